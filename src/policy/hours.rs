//! The allowed-hours window of a policy (UTC).

use time::Time;

use crate::error::{Error, Result};

/// A daily window in UTC, `"HH:MM-HH:MM"`: start included, end excluded; `24:00` may end it;
/// a start after the end wraps past midnight (`"22:00-06:00"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoursWindow {
    start: u16,
    end: u16,
}

impl HoursWindow {
    /// Parses `"HH:MM-HH:MM"`.
    ///
    /// # Errors
    /// [`Error::Config`] for another shape, an out-of-range time or an empty window.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::Config(format!(
                "hours `{}`: expected \"HH:MM-HH:MM\" in UTC, for example \"08:00-20:00\"",
                text.escape_debug()
            ))
        };
        let (a, b) = text.trim().split_once('-').ok_or_else(bad)?;
        let start = minutes(a).ok_or_else(bad)?;
        let end = minutes(b).ok_or_else(bad)?;
        if start == end || start >= 24 * 60 {
            return Err(bad());
        }
        Ok(HoursWindow { start, end })
    }

    /// Whether the UTC time of day `t` falls in the window.
    pub fn contains(&self, t: Time) -> bool {
        let m = u16::from(t.hour()) * 60 + u16::from(t.minute());
        if self.start < self.end {
            (self.start..self.end).contains(&m)
        } else {
            m >= self.start || m < self.end
        }
    }
}

fn minutes(hhmm: &str) -> Option<u16> {
    let (h, m) = hhmm.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::time;

    #[test]
    fn windows_include_start_exclude_end_and_wrap() {
        let day = HoursWindow::parse("08:00-20:00").unwrap();
        assert!(day.contains(time!(08:00)));
        assert!(day.contains(time!(19:59)));
        assert!(!day.contains(time!(20:00)));
        assert!(!day.contains(time!(03:00)));
        let night = HoursWindow::parse("22:00-06:00").unwrap();
        assert!(night.contains(time!(23:30)));
        assert!(night.contains(time!(05:59)));
        assert!(!night.contains(time!(12:00)));
        let all = HoursWindow::parse("00:00-24:00").unwrap();
        assert!(all.contains(time!(00:00)) && all.contains(time!(23:59)));
        for bad in [
            "",
            "8-20",
            "08:00",
            "25:00-26:00",
            "10:00-10:00",
            "10:61-11:00",
            "24:00-01:00",
        ] {
            assert!(HoursWindow::parse(bad).is_err(), "{bad}");
        }
    }
}
