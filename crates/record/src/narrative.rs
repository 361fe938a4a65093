//! Narrative (`text.div`, XHTML) reduced to plain paragraphs. Sources' markup is never passed
//! through to the page: the text is kept, block elements become paragraph breaks, and the
//! result is escaped again when rendered. Contents of `<script>` and `<style>` are dropped.

use serde_json::Value;

const BLOCKS: [&str; 16] = [
    "p",
    "div",
    "br",
    "li",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "table",
    "blockquote",
    "pre",
];

/// The paragraphs of an XHTML fragment, as plain text.
pub(crate) fn paragraphs(xhtml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut rest = xhtml;
    let mut skipping: Option<&'static str> = None;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('<')
            && let Some(gt) = after.find('>')
        {
            let tag = after.get(..gt).unwrap_or("");
            rest = after.get(gt + 1..).unwrap_or("");
            let closing = tag.starts_with('/');
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase();
            if let Some(s) = skipping {
                if closing && name == s {
                    skipping = None;
                }
                continue;
            }
            if !closing && !tag.ends_with('/') {
                if name == "script" {
                    skipping = Some("script");
                    continue;
                }
                if name == "style" {
                    skipping = Some("style");
                    continue;
                }
            }
            if BLOCKS.contains(&name.as_str()) {
                flush(&mut cur, &mut out);
            } else if name == "td" || name == "th" {
                cur.push(' ');
            }
            continue;
        }
        // A '<' that opens no tag is text.
        let next = rest
            .get(1..)
            .and_then(|r| r.find('<'))
            .map_or(rest.len(), |i| i + 1);
        let (chunk, after) = rest.split_at(next);
        rest = after;
        if skipping.is_none() {
            decode_into(&mut cur, chunk);
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// The paragraphs of a resource's or section's `text` (Narrative).
pub(crate) fn of(v: &Value) -> Vec<String> {
    v.get("text")
        .and_then(|t| t.get("div"))
        .and_then(Value::as_str)
        .map(paragraphs)
        .unwrap_or_default()
}

fn flush(cur: &mut String, out: &mut Vec<String>) {
    let t = cur.split_whitespace().collect::<Vec<_>>().join(" ");
    if !t.is_empty() {
        out.push(t);
    }
    cur.clear();
}

fn decode_into(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(rest.get(..i).unwrap_or(""));
        let after = rest.get(i + 1..).unwrap_or("");
        let semi = after.find(';').filter(|j| *j <= 10);
        let decoded = semi.and_then(|j| entity(after.get(..j).unwrap_or("")));
        match (semi, decoded) {
            (Some(j), Some(c)) => {
                out.push(c);
                rest = after.get(j + 1..).unwrap_or("");
            }
            _ => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
}

fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some(' '),
        _ => {
            let n = name.strip_prefix('#')?;
            let code = match n.strip_prefix(['x', 'X']) {
                Some(h) => u32::from_str_radix(h, 16).ok()?,
                None => n.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_keep_text_and_drop_markup() {
        let p = paragraphs(
            "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Fluids &amp; diet</p><p>Weigh <b>daily</b>.</p><script>alert(1)</script><ul><li>One</li><li>Two &lt;3&gt;</li></ul></div>",
        );
        assert_eq!(p, vec!["Fluids & diet", "Weigh daily.", "One", "Two <3>"]);
    }

    #[test]
    fn broken_markup_does_not_panic() {
        assert_eq!(paragraphs("a < b & c"), vec!["a < b & c"]);
        assert_eq!(
            paragraphs("<p>x &#x263A; &bogus; &"),
            vec!["x \u{263A} &bogus; &"]
        );
        assert!(paragraphs("").is_empty());
    }
}
