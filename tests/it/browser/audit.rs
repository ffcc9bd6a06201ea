//! Checks run on every page state the browser tests reach, at 1280×800 and as a 390×844 phone:
//! axe-core finds no violation (any rule it runs by default), and on the phone nothing scrolls
//! sideways and no control sticks out of the screen.
//!
//! axe-core comes from npm (`tests/browser`, installed with `npm ci` there, as `.ci/run` does).
//! Without it the checks are skipped with a note, unless `GATEHOUSE_REQUIRE_BROWSER=1`.

use serde_json::{Value, json};

use super::webdriver::WebDriver;

const AXE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/browser/node_modules/axe-core/axe.min.js"
);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Size {
    Desktop,
    Phone,
}

impl Size {
    fn metrics(self) -> Value {
        match self {
            Size::Desktop => json!({
                "width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false,
            }),
            Size::Phone => json!({
                "width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": true,
            }),
        }
    }

    fn width(self) -> u64 {
        match self {
            Size::Desktop => 1280,
            Size::Phone => 390,
        }
    }
}

pub struct Auditor {
    axe: Option<String>,
    /// Page states checked so far (for the closing line).
    checked: std::sync::atomic::AtomicUsize,
}

/// After a frame (so a new viewport is laid out): the viewport's width, how far the page
/// scrolls sideways, and the elements that stick out, with the controls among them.
const LAYOUT: &str = r"
return new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => {
  const d = document.documentElement;
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + (typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\s+/).join('.') : '');
  const out = [];
  const controls = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const off = r.right > d.clientWidth + 1 || r.left < -1;
    if (!off) continue;
    if (el.matches('a, button, input, select, textarea, summary')) controls.push(name(el) + ' ' + Math.round(r.left) + '..' + Math.round(r.right));
    else if (out.length < 6) out.push(name(el) + ' ' + Math.round(r.left) + '..' + Math.round(r.right));
  }
  resolve({ inner: window.innerWidth, scroll: d.scrollWidth, client: d.clientWidth, wide: out, controls });
})));
";

const RUN_AXE: &str = r"
return axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations.map((v) =>
  v.id + ' (' + v.impact + '): ' + v.help + '\n      ' + v.nodes.slice(0, 4).map((n) =>
    n.target.join(' ') + ' :: ' + (n.failureSummary || '').replace(/\s+/g, ' ')).join('\n      ')));
";

/// With `GATEHOUSE_SCREENSHOTS=DIR`, each checked state is saved as `DIR/<what>-<size>.png`
/// (the whole page), for looking at what the checks saw.
async fn screenshot(wd: &WebDriver, dir: &std::path::Path, what: &str, size: Size) {
    use base64::Engine as _;
    let slug: String = what
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let full = wd
        .exec(
            "return Math.ceil(document.documentElement.scrollHeight);",
            json!([]),
        )
        .await;
    let mut metrics = size.metrics();
    metrics["height"] = full;
    // One pixel per CSS pixel keeps the files small; the layout is the same.
    metrics["deviceScaleFactor"] = json!(1);
    wd.cdp("Emulation.setDeviceMetricsOverride", metrics).await;
    let png = wd.cmd(http::Method::GET, &wd.s("/screenshot"), None).await;
    wd.cdp("Emulation.setDeviceMetricsOverride", size.metrics())
        .await;
    if let Some(bytes) = png
        .as_str()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
    {
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(
            dir.join(format!("{slug}-{size:?}.png").to_lowercase()),
            bytes,
        );
    }
}

impl Auditor {
    pub fn load() -> Auditor {
        let axe = match std::fs::read_to_string(AXE) {
            Ok(src) => Some(src),
            Err(_) => {
                assert!(
                    std::env::var("GATEHOUSE_REQUIRE_BROWSER").as_deref() != Ok("1"),
                    "GATEHOUSE_REQUIRE_BROWSER=1 but axe-core is not installed \
                     (cd tests/browser && npm ci)"
                );
                crate::harness::note_skipped(
                    "the accessibility checks (axe-core) of the browser test",
                    "axe-core is not installed (cd tests/browser && npm ci)",
                );
                None
            }
        };
        Auditor {
            axe,
            checked: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Checks the page now open, at both sizes, and leaves the browser at desktop size.
    /// Fails with every problem found, naming `what` and the address.
    pub async fn check(&self, wd: &WebDriver, what: &str) {
        let mut problems = Vec::new();
        for size in [Size::Phone, Size::Desktop] {
            wd.cdp("Emulation.setDeviceMetricsOverride", size.metrics())
                .await;
            let layout = wd.exec(LAYOUT, json!([])).await;
            assert_eq!(
                layout["inner"].as_u64(),
                Some(size.width()),
                "the viewport did not take the {size:?} width: {layout}"
            );
            if size == Size::Phone {
                let (scroll, client) = (&layout["scroll"], &layout["client"]);
                if scroll.as_u64() > client.as_u64() {
                    problems.push(format!(
                        "phone: the page scrolls sideways ({scroll} > {client}); wide: {}",
                        layout["wide"]
                    ));
                }
            }
            if layout["controls"].as_array().is_some_and(|c| !c.is_empty()) {
                problems.push(format!(
                    "{size:?}: controls outside the screen: {}",
                    layout["controls"]
                ));
            }
            if let Some(dir) = std::env::var_os("GATEHOUSE_SCREENSHOTS") {
                screenshot(wd, std::path::Path::new(&dir), what, size).await;
            }
            if let Some(axe) = &self.axe {
                if wd.exec("return typeof axe;", json!([])).await != json!("object") {
                    wd.exec(&format!("{axe}\n;return true;"), json!([])).await;
                    assert_eq!(
                        wd.exec("return typeof axe.run;", json!([])).await,
                        json!("function"),
                        "axe-core did not load into {what}"
                    );
                }
                let found = wd.exec(RUN_AXE, json!([])).await;
                if std::env::var_os("GATEHOUSE_AXE_DEBUG").is_some() {
                    eprintln!("{what} {size:?}: {found}");
                }
                for v in found.as_array().into_iter().flatten() {
                    problems.push(format!("{size:?}: axe: {}", v.as_str().unwrap_or("?")));
                }
            }
        }
        self.checked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(
            problems.is_empty(),
            "{what} ({}):\n  {}",
            wd.url().await,
            problems.join("\n  ")
        );
    }

    pub fn checked(&self) -> usize {
        self.checked.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The focused field's focus ring and border (computed, as drawn) against the card and the
/// page behind it: at least 3:1 each (WCAG 1.4.11, non-text contrast).
pub async fn non_text_contrast(wd: &WebDriver) {
    let got = wd
        .exec(
            r"
const el = document.activeElement;
const cs = getComputedStyle(el);
const card = getComputedStyle(el.closest('main')).backgroundColor;
const page = getComputedStyle(document.documentElement).backgroundColor;
return { tag: el.id, outline: cs.outlineStyle, ring: cs.outlineColor, border: cs.borderTopColor, card, page };
",
            json!([]),
        )
        .await;
    if std::env::var_os("GATEHOUSE_AXE_DEBUG").is_some() {
        eprintln!("focus ring and border: {got}");
    }
    assert_eq!(got["outline"], json!("solid"), "no focus ring drawn: {got}");
    let color = |k: &str| {
        parse_color(got[k].as_str().unwrap_or_default()).unwrap_or_else(|| panic!("{k}: {got}"))
    };
    let (ring, border, card, page) = (color("ring"), color("border"), color("card"), color("page"));
    for (what, fg, bg) in [
        ("focus ring on the card", ring, card),
        ("focus ring on the page", ring, page),
        ("field border on the card", border, card),
    ] {
        let ratio = contrast(fg, bg);
        assert!(ratio >= 3.0, "{what}: {ratio:.2}:1 ({got})");
    }
}

/// `rgb(r, g, b)`, `rgba(...)` or `color(srgb r g b)` as 0..1 channels.
fn parse_color(css: &str) -> Option<[f64; 3]> {
    let inner = |prefix: &str| css.strip_prefix(prefix)?.strip_suffix(')');
    if let Some(body) = inner("color(srgb ") {
        let v: Vec<f64> = body
            .split_whitespace()
            .take(3)
            .filter_map(|x| x.parse().ok())
            .collect();
        return (v.len() == 3).then(|| [v[0], v[1], v[2]]);
    }
    let body = inner("rgb(").or_else(|| inner("rgba("))?;
    let v: Vec<f64> = body
        .split(',')
        .take(3)
        .filter_map(|x| x.trim().parse::<f64>().ok())
        .map(|x| x / 255.0)
        .collect();
    (v.len() == 3).then(|| [v[0], v[1], v[2]])
}

fn contrast(a: [f64; 3], b: [f64; 3]) -> f64 {
    let lum = |c: [f64; 3]| {
        let f = |x: f64| {
            if x <= 0.039_28 {
                x / 12.92
            } else {
                ((x + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2])
    };
    let (x, y) = (lum(a) + 0.05, lum(b) + 0.05);
    if x > y { x / y } else { y / x }
}
