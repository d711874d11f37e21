//! An alert as a Slack message (`format = "slack"`): the summary, then each output tail in
//! a code block. Everything in it comes from a job or the table (names, reasons, output,
//! host), so `&`, `<` and `>` are escaped as Slack asks: a job's output cannot ping
//! `@channel` or show a link under a false name. The text stays within Slack's limit.

use super::message::Alert;

/// Slack shows at most 40,000 characters of a message's text; the text stays under it.
pub(super) const MAX_CHARS: usize = 40_000;
/// The summary's share when it alone would not fit (a reason that is a whole log).
const MAX_SUMMARY_CHARS: usize = 20_000;
/// What a shortened part says.
const TRUNCATED: &str = "(truncated)";

/// The Slack webhook's body: `{"text": ...}`.
pub(super) fn payload(alert: &Alert) -> serde_json::Value {
    serde_json::json!({ "text": text(alert) })
}

/// The message text: the escaped summary, then each tail in a code block, the tails
/// shortened first (their last lines kept) so that the whole stays under [`MAX_CHARS`].
pub(super) fn text(alert: &Alert) -> String {
    let (mut out, cut) = first_within(&escaped(&alert.summary()), MAX_SUMMARY_CHARS);
    if cut {
        out.push_str(&format!("... {TRUNCATED}\n"));
    }
    let tails: Vec<(&str, Vec<String>)> = alert
        .tails()
        .into_iter()
        .map(|(name, t)| (name, escaped(&unfenced(t.trim_end_matches('\n')))))
        .collect();
    // The frame of a tail: "\n*last lines of stdout* (truncated)\n```\n" and "\n```\n".
    let frame = 48;
    let room = MAX_CHARS
        .saturating_sub(char_count(&out) + 1)
        .saturating_sub(frame * tails.len());
    let sizes: Vec<usize> = tails.iter().map(|(_, t)| chars_of(t)).collect();
    for ((name, tail), keep) in tails.iter().zip(shares(&sizes, room)) {
        let (kept, cut) = last_within(tail, keep);
        let note = if cut {
            format!(" {TRUNCATED}")
        } else {
            String::new()
        };
        out.push_str(&format!(
            "\n*last lines of {name}*{note}\n```\n{kept}\n```\n"
        ));
    }
    out
}

/// How many characters of each tail fit in `room`: the shorter ones whole when they can,
/// the room left shared by the longer ones.
fn shares(sizes: &[usize], room: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| sizes[i]);
    let mut left = room;
    let mut out = vec![0; sizes.len()];
    for (k, &i) in order.iter().enumerate() {
        let fair = left / (sizes.len() - k);
        out[i] = sizes[i].min(fair);
        left -= out[i];
    }
    out
}

/// The characters of escaped pieces.
fn chars_of(pieces: &[String]) -> usize {
    pieces.iter().map(|p| char_count(p)).sum()
}

/// The first pieces that fit in `max` characters, and whether some were left out.
fn first_within(pieces: &[String], max: usize) -> (String, bool) {
    let mut used = 0;
    let mut out = String::new();
    for p in pieces {
        used += char_count(p);
        if used > max {
            return (out, true);
        }
        out.push_str(p);
    }
    (out, false)
}

/// The last pieces that fit in `max` characters, and whether some were left out.
fn last_within(pieces: &[String], max: usize) -> (String, bool) {
    let mut used = 0;
    let mut from = pieces.len();
    while from > 0 && used + char_count(&pieces[from - 1]) <= max {
        used += char_count(&pieces[from - 1]);
        from -= 1;
    }
    (pieces[from..].concat(), from > 0)
}

/// The text as pieces, one per character: `&`, `<` and `>` escaped as `&amp;`, `&lt;` and
/// `&gt;` (a shortened part never cuts an escape in two).
fn escaped(s: &str) -> Vec<String> {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// A tail that cannot close its code block: a zero-width space between any two backticks
/// in a row, so that it holds no ```.
fn unfenced(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev = None;
    for c in s.chars() {
        if c == '`' && prev == Some('`') {
            out.push('\u{200B}');
        }
        out.push(c);
        prev = Some(c);
    }
    out
}

fn char_count(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(stdout: &str, stderr: &str) -> Alert {
        let mut a: Alert = serde_json::from_value(serde_json::json!({
            "event": "failure", "job": "j<b>", "host": "h&h", "schedule": null,
            "zone": "UTC", "next_run": null, "stdout_tail": stdout, "stderr_tail": stderr,
            "suppressed": 0,
            "run": {"run_id": "r", "job": "j", "scheduled": "", "started": "", "ended": "",
                    "duration_ms": 0, "attempts": [], "outcome": "failure",
                    "trigger": "run"},
        }))
        .expect("an alert");
        a.run.reason = Some("exit 2 <!here>".into());
        a
    }

    #[test]
    fn what_comes_from_the_job_is_escaped_and_tails_are_code_blocks() {
        let t = text(&alert(
            "<!channel> & <https://evil.example|click here>\n",
            "",
        ));
        assert!(
            t.contains("FAILED j&lt;b&gt; on h&amp;h: exit 2 &lt;!here&gt;"),
            "{t}"
        );
        assert!(t.contains(
            "*last lines of stdout*\n```\n&lt;!channel&gt; &amp; \
             &lt;https://evil.example|click here&gt;\n```\n"
        ));
        assert!(!t.contains("<!"), "{t}");
    }

    #[test]
    fn a_tail_cannot_close_its_code_block() {
        let t = text(&alert("a ```\n<!channel> ````` b", ""));
        let inner = t.split_once("```\n").map(|(_, r)| r).unwrap_or_default();
        let inner = inner
            .rsplit_once("\n```")
            .map(|(l, _)| l)
            .unwrap_or_default();
        assert!(!inner.contains("``"), "{inner:?}");
        assert!(inner.contains("&lt;!channel&gt;"), "{inner:?}");
    }

    #[test]
    fn a_huge_message_is_shortened_tails_first_keeping_their_last_lines() {
        let big = format!("{}\nLAST", "<&>".repeat(30_000));
        let t = text(&alert(&big, "short stderr"));
        assert!(t.chars().count() < MAX_CHARS, "{}", t.chars().count());
        assert!(t.contains("*last lines of stdout* (truncated)"), "{t:.200}");
        assert!(t.contains("LAST\n```"));
        assert!(t.contains("*last lines of stderr*\n```\nshort stderr\n```"));
        assert!(t.contains("FAILED j&lt;b&gt;"));
        // An escape is never cut in two.
        let body = t.split("(truncated)\n```\n").nth(1).unwrap_or_default();
        assert!(body.starts_with("&"), "{:.20}", body);
    }
}
