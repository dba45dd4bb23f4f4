//! Offline abuse (`docs/explanation/seats.md`): a license whose seats go offline again and again looks
//! like one seat shared by machines taking turns. Over a rolling 30 days, more than 5
//! offline cycles *and* more than 20 days offline in total flag it; so do acquires refused
//! beyond the license's acquire budget in more than 5 clock hours (hosts taking turns
//! online, faster than the budget allows). Pure: the periods (from reconnect reports and
//! lapses), the over-budget hours and the time are passed in.

/// The window looked at, in seconds.
pub const WINDOW_SECS: i64 = 30 * 86_400;
/// Cycles allowed in the window; one more flags (with the days).
pub const MAX_CYCLES: u32 = 5;
/// Offline days allowed in the window; more flags (with the cycles).
pub const MAX_OFFLINE_DAYS: i64 = 20;
/// Clock hours with acquires refused over the acquire budget allowed in the window; one
/// more flags, alone. A rolling update or a crash loop trips the budget in an hour or
/// two; hosts taking turns on too few seats trip it hour after hour.
pub const MAX_OVER_BUDGET_HOURS: u32 = 5;

/// One offline period of one session: from `start` to `end` (seconds), or still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// When it went offline.
    pub start: i64,
    /// When it came back (reconnected), or `None` while it is still offline.
    pub end: Option<i64>,
}

/// What the rule found for one license.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Offline periods that reach into the window.
    pub cycles: u32,
    /// Seconds offline inside the window, summed over sessions.
    pub offline_secs: i64,
    /// Clock hours inside the window in which an acquire was refused over the budget.
    pub over_budget_hours: u32,
    /// More than [`MAX_CYCLES`] cycles and more than [`MAX_OFFLINE_DAYS`] days, or more
    /// than [`MAX_OVER_BUDGET_HOURS`] over-budget hours.
    pub flagged: bool,
}

impl Verdict {
    /// Days offline, for messages.
    pub fn offline_days(&self) -> f64 {
        self.offline_secs as f64 / 86_400.0
    }
}

/// Judges `periods` and the over-budget hours (each hour's start) at `now`: a period
/// counts as a cycle when any of it lies within the 30 days before `now`, and only that
/// part counts towards the days; an hour counts once, when it starts within the window.
/// Periods in the future or ending before they start, and hours in the future, are
/// ignored.
pub fn judge(periods: &[Period], over_budget: &[i64], now: i64) -> Verdict {
    let from = now.saturating_sub(WINDOW_SECS);
    let mut cycles = 0u32;
    let mut offline_secs = 0i64;
    for p in periods {
        let end = p.end.unwrap_or(now).min(now);
        if p.start > now || end < p.start {
            continue;
        }
        let start = p.start.max(from);
        if end <= from && p.end.is_some() {
            continue;
        }
        cycles = cycles.saturating_add(1);
        offline_secs = offline_secs.saturating_add(end.saturating_sub(start).max(0));
    }
    let hours: std::collections::BTreeSet<i64> = over_budget
        .iter()
        .filter(|&&h| h >= from && h <= now)
        .map(|h| h.div_euclid(3600))
        .collect();
    let over_budget_hours = u32::try_from(hours.len()).unwrap_or(u32::MAX);
    Verdict {
        cycles,
        offline_secs,
        over_budget_hours,
        flagged: (cycles > MAX_CYCLES && offline_secs > MAX_OFFLINE_DAYS * 86_400)
            || over_budget_hours > MAX_OVER_BUDGET_HOURS,
    }
}

/// The WARN line for a flagged license.
pub fn message(license: &str, v: &Verdict) -> String {
    let mut why = format!(
        "{} offline cycles, {:.1} days offline",
        v.cycles,
        v.offline_days()
    );
    if v.over_budget_hours > 0 {
        why.push_str(&format!(
            ", acquires over the budget in {} hours",
            v.over_budget_hours
        ));
    }
    format!("Possible offline abuse: {license} ({why} in 30 days)")
}

/// Judges every license of `periods` (license, period) and `over_budget` (license, hour)
/// at `now`, in license order.
pub fn judge_each<'a>(
    periods: impl IntoIterator<Item = (&'a str, Period)>,
    over_budget: impl IntoIterator<Item = (&'a str, i64)>,
    now: i64,
) -> Vec<(String, Verdict)> {
    type Seen = (Vec<Period>, Vec<i64>);
    let mut by_license: std::collections::BTreeMap<&str, Seen> = Default::default();
    for (license, p) in periods {
        by_license.entry(license).or_default().0.push(p);
    }
    for (license, h) in over_budget {
        by_license.entry(license).or_default().1.push(h);
    }
    by_license
        .into_iter()
        .map(|(license, (ps, hs))| (license.to_string(), judge(&ps, &hs, now)))
        .collect()
}

/// The licenses flagged now, so a license is warned about once when it becomes flagged
/// (not at every period recorded while it stays so), and the metric counts them.
#[derive(Debug, Default)]
pub struct Flags {
    set: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Flags {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<String>> {
        self.set.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one license's verdict; true when it became flagged by it.
    pub fn note(&self, license: &str, v: &Verdict) -> bool {
        let mut set = self.lock();
        if v.flagged {
            set.insert(license.to_string())
        } else {
            set.remove(license);
            false
        }
    }

    /// Replaces every verdict (licenses absent from `all` are no longer flagged); returns
    /// the entries of the licenses that became flagged.
    pub fn note_all<'a>(&self, all: &'a [(String, Verdict)]) -> Vec<&'a (String, Verdict)> {
        let mut set = self.lock();
        let flagged: std::collections::BTreeSet<String> = all
            .iter()
            .filter(|(_, v)| v.flagged)
            .map(|(l, _)| l.clone())
            .collect();
        let new = all
            .iter()
            .filter(|(l, v)| v.flagged && !set.contains(l))
            .collect();
        *set = flagged;
        new
    }

    /// How many licenses are flagged.
    pub fn count(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_795_354_152;

    /// `n` closed periods of `secs` each, ending `gap` seconds apart before now.
    fn periods(n: i64, secs: i64) -> Vec<Period> {
        (0..n)
            .map(|i| {
                let end = NOW - i * (secs + 3600);
                Period {
                    start: end - secs,
                    end: Some(end),
                }
            })
            .collect()
    }

    #[test]
    fn the_rule_by_table() {
        // (what, periods, cycles, offline seconds, flagged)
        let cases: Vec<(&str, Vec<Period>, u32, i64, bool)> = vec![
            ("nothing", vec![], 0, 0, false),
            (
                "5 cycles of 4.2 days",
                periods(5, 4 * DAY + 5 * 3600),
                5,
                5 * (4 * DAY + 5 * 3600),
                false,
            ),
            (
                "6 cycles of 3.5 days",
                periods(6, 3 * DAY + 12 * 3600),
                6,
                21 * DAY,
                true,
            ),
            (
                "6 cycles, exactly 20 days",
                periods(6, 20 * DAY / 6),
                6,
                20 * DAY,
                false,
            ),
            (
                "6 cycles, 20.01 days",
                periods(6, (20 * DAY + 864) / 6),
                6,
                20 * DAY + 864,
                true,
            ),
            ("many short cycles", periods(30, 3600), 30, 30 * 3600, false),
            (
                "one long absence",
                vec![Period {
                    start: NOW - 29 * DAY,
                    end: None,
                }],
                1,
                29 * DAY,
                false,
            ),
            (
                "straddling the window: only the inside counts",
                vec![Period {
                    start: NOW - 40 * DAY,
                    end: Some(NOW - 25 * DAY),
                }],
                1,
                5 * DAY,
                false,
            ),
            (
                "ended before the window",
                vec![Period {
                    start: NOW - 40 * DAY,
                    end: Some(NOW - 31 * DAY),
                }],
                0,
                0,
                false,
            ),
            (
                "still offline since before the window",
                vec![Period {
                    start: NOW - 60 * DAY,
                    end: None,
                }],
                1,
                30 * DAY,
                false,
            ),
            (
                "in the future, or backwards: ignored",
                vec![
                    Period {
                        start: NOW + DAY,
                        end: None,
                    },
                    Period {
                        start: NOW - DAY,
                        end: Some(NOW - 2 * DAY),
                    },
                ],
                0,
                0,
                false,
            ),
        ];
        for (what, ps, cycles, secs, flagged) in cases {
            let v = judge(&ps, &[], NOW);
            assert_eq!(
                (v.cycles, v.offline_secs, v.flagged),
                (cycles, secs, flagged),
                "{what}"
            );
        }
    }

    #[test]
    fn acquires_over_the_budget_flag_in_more_than_five_distinct_hours_of_the_window() {
        let h = |n: i64| NOW - n * 3600;
        // (what, over-budget refusals' times, hours counted, flagged)
        let cases: Vec<(&str, Vec<i64>, u32, bool)> = vec![
            ("none", vec![], 0, false),
            ("five hours", (1..=5).map(h).collect(), 5, false),
            ("six hours", (1..=6).map(h).collect(), 6, true),
            (
                "many refusals in one hour count once",
                (0..100).map(|i| h(1) + i).collect(),
                1,
                false,
            ),
            (
                "before the window, or in the future: not counted",
                vec![NOW - WINDOW_SECS - 3600, NOW - 31 * DAY, NOW + 3600, h(2)],
                1,
                false,
            ),
        ];
        for (what, hours, counted, flagged) in cases {
            let v = judge(&[], &hours, NOW);
            assert_eq!(
                (v.over_budget_hours, v.flagged),
                (counted, flagged),
                "{what}"
            );
        }
        let v = judge(&[], &(1..=6).map(h).collect::<Vec<_>>(), NOW);
        assert_eq!(
            message("org-turns", &v),
            "Possible offline abuse: org-turns (0 offline cycles, 0.0 days offline, \
             acquires over the budget in 6 hours in 30 days)"
        );
    }

    #[test]
    fn six_machines_sharing_a_seat_by_turns_are_flagged_and_named() {
        // Six sessions each offline for 3.5 days within the month.
        let ps = periods(6, 3 * DAY + 12 * 3600);
        let v = judge(&ps, &[], NOW);
        assert!(v.flagged);
        assert_eq!(
            message("org-acme", &v),
            "Possible offline abuse: org-acme (6 offline cycles, 21.0 days offline in 30 days)"
        );
    }

    #[test]
    fn generated_sequences_never_count_more_than_the_window_per_period() {
        // Pseudo-random periods: each contributes at most the window, cycles at most one.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let mut ps = Vec::new();
            for _ in 0..(x % 12) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let start = NOW - (x % (90 * DAY as u64)) as i64;
                let len = (x.rotate_left(17) % (40 * DAY as u64)) as i64;
                let end = if x % 5 == 0 { None } else { Some(start + len) };
                ps.push(Period { start, end });
            }
            let v = judge(&ps, &[], NOW);
            assert!(v.cycles as usize <= ps.len());
            assert!(v.offline_secs <= ps.len() as i64 * WINDOW_SECS);
            assert_eq!(
                v.flagged,
                v.cycles > MAX_CYCLES && v.offline_secs > 20 * DAY
            );
            assert_eq!(v.over_budget_hours, 0);
        }
    }

    #[test]
    fn licenses_are_judged_apart_and_warned_about_once() {
        let long = |i: i64| Period {
            start: NOW - (i + 1) * 4 * DAY,
            end: Some(NOW - (i + 1) * 4 * DAY + 4 * DAY - 60),
        };
        let mut all: Vec<(&str, Period)> = (0..6).map(|i| ("org-a", long(i))).collect();
        all.extend((0..5).map(|i| ("org-b", long(i))));
        all.push(("org-c", long(0)));
        // org-d: no offline period, hosts taking turns online in six hours.
        let turns: Vec<(&str, i64)> = (1..=6).map(|h| ("org-d", NOW - h * 3600)).collect();
        let verdicts = judge_each(all.iter().copied(), turns.iter().copied(), NOW);
        let names: Vec<(&str, bool)> = verdicts
            .iter()
            .map(|(l, v)| (l.as_str(), v.flagged))
            .collect();
        assert_eq!(
            names,
            [
                ("org-a", true),
                ("org-b", false),
                ("org-c", false),
                ("org-d", true)
            ]
        );
        assert_eq!(verdicts[3].1.over_budget_hours, 6);
        assert_eq!(verdicts[0].1.cycles, 6);

        let flags = Flags::default();
        let names = |new: Vec<&(String, Verdict)>| -> Vec<String> {
            new.into_iter().map(|(l, _)| l.clone()).collect()
        };
        assert_eq!(names(flags.note_all(&verdicts)), ["org-a", "org-d"]);
        assert!(flags.note_all(&verdicts).is_empty(), "warned once");
        assert!(
            !flags.note("org-a", &verdicts[0].1),
            "still flagged, no new warning"
        );
        assert_eq!(flags.count(), 2);
        assert!(!flags.note("org-a", &verdicts[1].1));
        assert_eq!(flags.count(), 1, "a verdict that no longer flags clears it");
        assert!(
            flags.note("org-a", &verdicts[0].1),
            "flagged again: warned again"
        );
        assert_eq!(names(flags.note_all(&verdicts[1..3])), Vec::<String>::new());
        assert_eq!(
            flags.count(),
            0,
            "a license with no periods left is cleared"
        );
    }
}
