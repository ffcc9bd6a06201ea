//! Reading secrets from the terminal or stdin, and printing tables.

use std::io::{IsTerminal, Read};

use anyhow::{Context, bail};

use crate::config::Secret;

/// Reads a password: all of stdin with `--password-stdin` (one trailing newline removed), else
/// an interactive prompt asked twice. Never from argv.
pub fn read_password(from_stdin: bool) -> anyhow::Result<Secret<String>> {
    if from_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the password from stdin")?;
        if s.ends_with('\n') {
            s.pop();
            if s.ends_with('\r') {
                s.pop();
            }
        }
        if s.is_empty() {
            bail!("no password on stdin");
        }
        return Ok(Secret::new(s));
    }
    if !std::io::stdin().is_terminal() {
        bail!("stdin is not a terminal: pass --password-stdin and pipe the password in");
    }
    let first = rpassword::prompt_password("New password: ").context("reading the password")?;
    let second = rpassword::prompt_password("Repeat password: ").context("reading the password")?;
    if first != second {
        bail!("the two passwords differ");
    }
    Ok(Secret::new(first))
}

/// Prints rows as left-aligned columns under a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
