//! The HTML part of a mail, made from its text part: one paragraph per blank-line-separated
//! block, addresses turned into links. Made from the text so the two parts never say different
//! things, and kept plain (no images, no remote styles) so every mail client shows it alike.

/// `text` as a small HTML document titled `subject`.
pub fn from_text(subject: &str, text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2 + 400);
    out.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>");
    out.push_str(&escape(subject));
    out.push_str(
        "</title>\n</head>\n<body style=\"margin:0;padding:24px;background:#f4f6fa;\
         color:#1d2330;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif\">\n\
         <div style=\"max-width:560px;margin:0 auto;padding:24px;background:#fff;\
         border-radius:8px\">\n",
    );
    for block in text.split("\n\n").map(str::trim).filter(|b| !b.is_empty()) {
        out.push_str("<p>");
        for (i, line) in block.lines().enumerate() {
            if i > 0 {
                out.push_str("<br>\n");
            }
            push_line(&mut out, line);
        }
        out.push_str("</p>\n");
    }
    out.push_str("</div>\n</body>\n</html>\n");
    out
}

/// One line, its `http(s)://` words as links (a trailing full stop stays outside the link).
fn push_line(out: &mut String, line: &str) {
    let mut first = true;
    for word in line.split(' ') {
        if !first {
            out.push(' ');
        }
        first = false;
        if word.starts_with("https://") || word.starts_with("http://") {
            let (url, tail) = match word.strip_suffix('.') {
                Some(u) => (u, "."),
                None => (word, ""),
            };
            let url = escape(url);
            out.push_str(&format!(
                "<a href=\"{url}\" style=\"color:#1a56db;word-break:break-all\">{url}</a>{tail}"
            ));
        } else {
            out.push_str(&escape(word));
        }
    }
}

fn escape(s: &str) -> String {
    // minijinja's escaper, the one the templates use.
    minijinja::HtmlEscape(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_links_and_escaping() {
        let html = from_text(
            "Reset <yours>",
            "Hello & welcome.\n\nOpen https://x.example/a?token=1&b=2 now.\nOr https://x.example/b.\n",
        );
        assert!(
            html.contains("<title>Reset &lt;yours&gt;</title>"),
            "{html}"
        );
        assert!(html.contains("<p>Hello &amp; welcome.</p>"), "{html}");
        assert!(
            // minijinja escapes `/` too; a browser or mail client reads the same address.
            html.contains("<a href=\"https:&#x2f;&#x2f;x.example&#x2f;a?token=1&amp;b=2\""),
            "{html}"
        );
        assert!(
            html.contains(">https:&#x2f;&#x2f;x.example&#x2f;b</a>.</p>"),
            "{html}"
        );
    }
}
