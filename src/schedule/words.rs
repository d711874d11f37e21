//! A schedule in words ("every 5 minutes", "at 02:30 on Mon, Fri"), for people reading the
//! status page beside the expression as written. Shapes it cannot say plainly fall back to
//! the fields' values ("at minutes 0,7,33 of hours 1-3").

use super::{CronSpec, Expr};

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Expr {
    /// The schedule in words.
    pub fn describe(&self) -> String {
        match self {
            Expr::Reboot => "once at boot".to_string(),
            Expr::Start => "each time the daemon starts".to_string(),
            Expr::Manual => "only when triggered".to_string(),
            Expr::Every(secs) => format!(
                "every {}",
                crate::units::format_duration(std::time::Duration::from_secs(*secs),)
            ),
            Expr::Cron(spec) => spec.describe(),
        }
    }
}

/// The set bits of `bits` from `lo` to `hi`.
fn values(bits: u64, lo: u32, hi: u32) -> Vec<u32> {
    (lo..=hi).filter(|b| bits & (1 << b) != 0).collect()
}

/// `Some(step)` when `v` is every `step`th value from `lo` over the range, step > 1.
fn step_of(v: &[u32], lo: u32, hi: u32) -> Option<u32> {
    let step = v.get(1)?.checked_sub(v[0])?;
    let all = (lo..=hi).step_by(step as usize).collect::<Vec<_>>();
    (step > 1 && v[0] == lo && v == all.as_slice()).then_some(step)
}

/// `1,2,3,5` as "1-3,5".
fn ranges(v: &[u32], name: impl Fn(u32) -> String) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(match j - i {
            0 => name(v[i]),
            1 => format!("{}, {}", name(v[i]), name(v[j])),
            _ => format!("{}-{}", name(v[i]), name(v[j])),
        });
        i = j + 1;
    }
    out.join(", ")
}

impl CronSpec {
    fn describe(&self) -> String {
        let secs = values(self.seconds, 0, 59);
        let mins = values(self.minutes, 0, 59);
        let hours = values(self.hours.into(), 0, 23);
        let time = match (secs.as_slice(), mins.len(), hours.len()) {
            ([0], 60, 24) => "every minute".to_string(),
            (_, 60, 24) if secs.len() == 60 => "every second".to_string(),
            (_, 60, 24) if step_of(&secs, 0, 59).is_some() => {
                format!("every {} seconds", step_of(&secs, 0, 59).unwrap_or(1))
            }
            ([0], 1, 24) => format!("every hour at :{:02}", mins[0]),
            ([0], _, 24) => match step_of(&mins, 0, 59) {
                Some(s) => format!("every {s} minutes"),
                None => format!("every hour at minutes {}", ranges(&mins, |m| m.to_string())),
            },
            ([0], 1, _) if step_of(&hours, 0, 23).is_some() => format!(
                "every {} hours at :{:02}",
                step_of(&hours, 0, 23).unwrap_or(1),
                mins[0]
            ),
            ([0], 1, n) if n <= 6 => {
                let at: Vec<String> = hours
                    .iter()
                    .map(|h| format!("{h:02}:{:02}", mins[0]))
                    .collect();
                format!("at {}", at.join(", "))
            }
            ([0], 1, _) => format!(
                "at :{:02} of hours {}",
                mins[0],
                ranges(&hours, |h| h.to_string())
            ),
            _ => format!(
                "at second {} of minutes {} of hours {}",
                ranges(&secs, |s| s.to_string()),
                ranges(&mins, |m| m.to_string()),
                ranges(&hours, |h| h.to_string())
            ),
        };
        let mut days = Vec::new();
        let dow = values(self.dow.into(), 0, 6);
        let dom = values(self.dom.into(), 1, 31);
        let dow_text = || format!("on {}", ranges(&dow, |d| DAYS[d as usize].to_string()));
        let dom_text = || format!("on day {} of the month", ranges(&dom, |d| d.to_string()));
        match (self.dom_star, self.dow_star) {
            (true, true) => {}
            (true, false) => days.push(dow_text()),
            (false, true) => days.push(dom_text()),
            (false, false) => days.push(format!("{} or {}", dom_text(), dow_text())),
        }
        let months = values(self.months.into(), 1, 12);
        if months.len() < 12 {
            let name = |m: u32| MONTHS[m as usize - 1].to_string();
            days.push(format!("in {}", ranges(&months, name)));
        }
        if days.is_empty() && time.starts_with("at ") {
            days.push("every day".to_string());
        }
        std::iter::once(time)
            .chain(days)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> String {
        Expr::parse(text).expect("a schedule").describe()
    }

    #[test]
    fn common_schedules_read_as_words() {
        for (expr, want) in [
            ("* * * * *", "every minute"),
            ("*/5 * * * * *", "every 5 seconds"),
            ("*/5 * * * *", "every 5 minutes"),
            ("15 * * * *", "every hour at :15"),
            ("@daily", "at 00:00 every day"),
            ("30 2 * * 1-5", "at 02:30 on Mon-Fri"),
            ("0 9,17 * * *", "at 09:00, 17:00 every day"),
            ("0 */6 * * *", "every 6 hours at :00"),
            ("0 3 1 * *", "at 03:00 on day 1 of the month"),
            ("0 0 1 1 *", "at 00:00 on day 1 of the month in Jan"),
            ("0 4 * * 0,6", "at 04:00 on Sun, Sat"),
            ("@every 90m", "every 1h30m"),
            ("@manual", "only when triggered"),
            ("@reboot", "once at boot"),
            (
                "7,33 1-3 * * *",
                "at second 0 of minutes 7, 33 of hours 1-3 every day",
            ),
        ] {
            assert_eq!(words(expr), want, "{expr}");
        }
    }
}
