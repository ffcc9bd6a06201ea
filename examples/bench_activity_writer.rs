//! The activity writer alone: how many `request` rows per second it stores, and the CPU time
//! per row, with the queue, the writer task and the database on one thread (a current-thread
//! runtime; pin the process to one core with `taskset -c N` to keep SQLite's worker thread
//! there too). Used by `bench/README.md`; an example target, so it is not part of the
//! `gatehouse` binary.
//!
//! Usage: `bench_activity_writer [ROWS] [DATABASE_URL]` (defaults: 200000 rows, SQLite in a
//! temporary folder). Records the rows as the proxy does (`AuditLog::record_request`) as fast
//! as the queue takes them, waits until every row is written, then checks the count in the
//! table.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use gatehouse::audit::{AuditLog, RequestActivity, RequestFacts};
use gatehouse::clock::{Clock, SystemClock};
use gatehouse::config::{AuditSettings, QueueFullPolicy};
use gatehouse::store::{NewUser, Store, Tier, Ts};
use gatehouse::web::RequestCtx;

fn cpu_seconds() -> f64 {
    // utime and stime of this process, fields 14 and 15 of /proc/self/stat, in clock ticks
    // (100 per second on Linux).
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

async fn run(rows: u64, url: &str) -> anyhow::Result<()> {
    let store = Store::connect(url, 4).await?;
    store.migrate().await?;
    let now = Ts(SystemClock.now());
    let user = store
        .insert_user(
            &NewUser {
                username: format!("writer-bench-{}", now.0.timestamp_micros()),
                email: format!("writer-bench-{}@example.com", now.0.timestamp_micros()),
                password_hash: None,
                first_name: None,
                last_name: None,
                phone: None,
                company_name: None,
                tier: Tier::Free,
                subscription_status: "active".into(),
                credits_balance: 0,
                is_active: true,
                is_verified: true,
                is_admin: false,
                is_superuser: false,
                email_notifications: false,
                sms_notifications: false,
                timezone: "UTC".into(),
                language: "en".into(),
                created_at: now,
                last_login: None,
                legacy_lead_id: None,
            },
            now,
        )
        .await?;
    let before = store.count_activity(Some("request")).await?;
    // The defaults of `[audit]`.
    let settings = AuditSettings {
        queue_capacity: 65536,
        batch_size: 512,
        flush_interval: Duration::from_millis(200),
        on_full: QueueFullPolicy::Wait,
    };
    let (log, writer) = AuditLog::spawn(store.for_background(), &settings);
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("wrk/4.2.0 (bench)"),
    );
    let rid = http::HeaderName::from_static("x-request-id");
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 40000));
    let ctx = RequestCtx::new(peer, false, &headers, &[], &rid);
    let method = http::Method::GET;
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    for _ in 0..rows {
        let record = RequestActivity::new(
            user.id,
            Ts(SystemClock.now()),
            &ctx,
            RequestFacts {
                method: &method,
                path: "/app/hello",
                route: Some("/app/**"),
                status: 200,
                elapsed: Duration::from_micros(180),
            },
        );
        log.record_request(record).await;
    }
    writer.shutdown().await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let stats = log.stats();
    let stored = store.count_activity(Some("request")).await? - before;
    println!(
        "rows {rows}: queued {}, written {}, dropped {}, in the table {stored}",
        stats.queued, stats.written, stats.dropped
    );
    println!(
        "{:.0} rows/s, {:.2} µs CPU per row (process: queueing, building and inserting), {:.2} s",
        rows as f64 / wall,
        cpu * 1e6 / rows as f64,
        wall
    );
    anyhow::ensure!(
        stats.dropped == 0 && u64::try_from(stored).unwrap_or(0) == rows,
        "rows were lost"
    );
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let rows = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000u64);
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("bench_activity_writer: no temporary folder: {e}");
            return ExitCode::FAILURE;
        }
    };
    let url = args
        .next()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench_activity_writer: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(rows, &url)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_activity_writer: {e:#}");
            ExitCode::FAILURE
        }
    }
}
