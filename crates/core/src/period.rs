//! Billing periods counted in months from an anchor, in the shop's time zone (RELIABILITY TIME-1).
//!
//! A subscription bought at some instant renews on the same local day and time each period: a
//! monthly plan started on 31 January at 23:30 in Shanghai renews on 28 (or 29) February at
//! 23:30, then on 31 March at 23:30 — every boundary is computed from the *anchor*, never from
//! the boundary before, so a short month does not pull the later ones forward. Times are kept as
//! UTC milliseconds; the zone is only used to find the local day and hour.
//!
//! Daylight saving: a local time that does not exist on the boundary's day (the clocks jump over
//! it) is moved forward by the length of the jump (02:30 on the spring-forward day in Los Angeles
//! is 03:30); a local time that happens twice (the clocks fall back) is the earlier of the two.
//!
//! Shape: [`boundary`] (the start of period `k`), [`period_at`] (which period an instant is in),
//! both pure.

use chrono::{Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

/// The instant (UTC ms) at which period `k` starts for a plan of `every_months` months anchored
/// at `anchor_ms` in zone `tz`; period 0 starts at the anchor. None for an unknown zone, a
/// non-positive length or a date beyond the calendar's range.
pub fn boundary(anchor_ms: i64, tz: &str, every_months: i64, k: i64) -> Option<i64> {
    if every_months <= 0 || k < 0 {
        return None;
    }
    let tz: Tz = tz.parse().ok()?;
    let anchor = tz.timestamp_millis_opt(anchor_ms).single()?.naive_local();
    let months = anchor.month0() as i64 + every_months.checked_mul(k)?;
    let year = i32::try_from(anchor.year() as i64 + months.div_euclid(12)).ok()?;
    let month = months.rem_euclid(12) as u32 + 1;
    let day = anchor.day().min(days_in_month(year, month)?);
    let local = NaiveDate::from_ymd_opt(year, month, day)?.and_time(anchor.time());
    resolve(&tz, local).map(|t| t.timestamp_millis())
}

/// The period `now_ms` falls in (0 before the first boundary, and before the anchor itself).
pub fn period_at(anchor_ms: i64, tz: &str, every_months: i64, now_ms: i64) -> Option<i64> {
    if now_ms < anchor_ms {
        return Some(0);
    }
    // A first guess from the average month, then walk to the exact period.
    let avg_month_ms = 2_629_746_000_i64; // 365.2425 days / 12
    let mut k = ((now_ms - anchor_ms) / (avg_month_ms * every_months.max(1))).max(0);
    while k > 0 && boundary(anchor_ms, tz, every_months, k)? > now_ms {
        k -= 1;
    }
    while boundary(anchor_ms, tz, every_months, k + 1)? <= now_ms {
        k += 1;
    }
    Some(k)
}

fn days_in_month(year: i32, month: u32) -> Option<u32> {
    let (ny, nm) = if month == 12 {
        (year.checked_add(1)?, 1)
    } else {
        (year, month + 1)
    };
    let first_next = NaiveDate::from_ymd_opt(ny, nm, 1)?;
    Some(first_next.pred_opt()?.day())
}

/// A local time as an instant: the earlier of two, or past a gap by the gap's length.
fn resolve(tz: &Tz, local: NaiveDateTime) -> Option<chrono::DateTime<Tz>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t),
        LocalResult::Ambiguous(early, _) => Some(early),
        LocalResult::None => {
            // The offset before the gap and after it differ by the gap's length; the instant the
            // local time would have had under the earlier offset is the same wall-clock time
            // shifted by the jump.
            let before = tz.offset_from_utc_datetime(&(local - Duration::hours(24)));
            let utc = local - before_offset(&before);
            Some(tz.from_utc_datetime(&utc))
        }
    }
}

fn before_offset(o: &<Tz as TimeZone>::Offset) -> Duration {
    use chrono::Offset;
    Duration::seconds(o.fix().local_minus_utc() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;

    const ZONES: [&str; 4] = [
        "America/Los_Angeles",
        "Europe/Berlin",
        "Asia/Shanghai",
        "Pacific/Auckland",
    ];

    fn at(tz: &str, y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
        let tz: Tz = tz.parse().unwrap();
        let local = NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap();
        resolve(&tz, local).unwrap().timestamp_millis()
    }

    fn local(ms: i64, tz: &str) -> NaiveDateTime {
        let tz: Tz = tz.parse().unwrap();
        tz.timestamp_millis_opt(ms).unwrap().naive_local()
    }

    #[test]
    fn the_31st_renews_on_the_last_day_of_short_months_and_returns_to_the_31st() {
        let tz = "Asia/Shanghai";
        let a = at(tz, 2027, 1, 31, 23, 30);
        let days: Vec<(u32, u32)> = (0..4)
            .map(|k| {
                let l = local(boundary(a, tz, 1, k).unwrap(), tz);
                assert_eq!((l.hour(), l.minute()), (23, 30));
                (l.month(), l.day())
            })
            .collect();
        assert_eq!(days, [(1, 31), (2, 28), (3, 31), (4, 30)]);
        // A leap year's February.
        let a = at(tz, 2028, 1, 31, 9, 0);
        assert_eq!(local(boundary(a, tz, 1, 1).unwrap(), tz).day(), 29);
    }

    #[test]
    fn the_29th_of_february_renews_yearly_on_the_28th_then_the_29th_again() {
        let tz = "Europe/Berlin";
        let a = at(tz, 2028, 2, 29, 12, 0);
        let l: Vec<(i32, u32, u32)> = (0..5)
            .map(|k| {
                let l = local(boundary(a, tz, 12, k).unwrap(), tz);
                (l.year(), l.month(), l.day())
            })
            .collect();
        assert_eq!(
            l,
            [
                (2028, 2, 29),
                (2029, 2, 28),
                (2030, 2, 28),
                (2031, 2, 28),
                (2032, 2, 29)
            ]
        );
    }

    #[test]
    fn daylight_saving_keeps_the_local_hour_or_steps_over_the_gap() {
        // Los Angeles springs forward on 2027-03-14 at 02:00 → 03:00.
        let tz = "America/Los_Angeles";
        let a = at(tz, 2027, 2, 14, 2, 30);
        let l = local(boundary(a, tz, 1, 1).unwrap(), tz);
        assert_eq!((l.day(), l.hour(), l.minute()), (14, 3, 30));
        // After the change, 02:30 exists again and is kept.
        let l = local(boundary(a, tz, 1, 2).unwrap(), tz);
        assert_eq!((l.month(), l.day(), l.hour(), l.minute()), (4, 14, 2, 30));
        // Berlin falls back on 2027-10-31 at 03:00 → 02:00: 02:30 happens twice; the first.
        let tz = "Europe/Berlin";
        let a = at(tz, 2027, 8, 31, 2, 30);
        let b = boundary(a, tz, 1, 2).unwrap();
        // 02:30 CEST (UTC+2) is 00:30 UTC.
        assert_eq!(crate::clock::rfc3339(b), "2027-10-31T00:30:00Z");
    }

    #[test]
    fn bad_arguments_have_no_boundary() {
        assert_eq!(boundary(0, "Mars/Olympus", 1, 1), None);
        assert_eq!(boundary(0, "UTC", 0, 1), None);
        assert_eq!(boundary(0, "UTC", 1, -1), None);
        assert_eq!(boundary(0, "UTC", i64::MAX, 2), None);
    }

    /// TIME-1 on the schedule itself: 1,000 plans started at random instants (a quarter of them at
    /// 23:30 local, a quarter on the 29th–31st, some on 29 February) in four zones, a clock
    /// stepping through 24 months in uneven steps, a renewal taken whenever the clock has passed a
    /// period not yet taken, keyed by (plan, period): exactly 24 each, no key twice, none
    /// skipped, each on the anchored local day.
    #[test]
    fn a_thousand_plans_renew_exactly_24_times_in_24_months() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_2027);
        let mut keys = std::collections::HashSet::new();
        for n in 0..1_000 {
            let tz = ZONES[n % 4];
            let (y, m) = (2027 + rng.gen_range(0..2), rng.gen_range(1..=12));
            let (d, h, min) = match n % 4 {
                0 => (rng.gen_range(1..=28), 23, 30),
                1 => (rng.gen_range(29..=31), rng.gen_range(0..24), 0),
                2 if n % 20 == 2 => (29, rng.gen_range(0..24), 15),
                _ => (rng.gen_range(1..=28), rng.gen_range(0..24), 45),
            };
            let (y, m) = if d == 29 && n % 20 == 2 {
                (2028, 2)
            } else {
                (y, m)
            };
            let d = d.min(days_in_month(y, m).unwrap());
            let anchor = at(tz, y, m, d, h, min);
            let every = if n % 10 == 9 { 3 } else { 1 };
            let months = 24 * every;
            let end = boundary(anchor, tz, every, 24).unwrap();
            assert_eq!(
                local(end, tz).day(),
                d.min({
                    let l = local(end, tz);
                    days_in_month(l.year(), l.month()).unwrap()
                }),
                "{tz} {y}-{m}-{d}: the anchored day after {months} months"
            );
            // The scheduler: run at uneven instants, take every period that has begun.
            let mut taken = 0;
            let mut now = anchor;
            while now <= end {
                now += rng.gen_range(1..=36) * 3_600_000;
                let k = period_at(anchor, tz, every, now.min(end)).unwrap();
                while taken < k {
                    taken += 1;
                    let start = boundary(anchor, tz, every, taken).unwrap();
                    assert!(start <= now, "a period taken before it began");
                    assert!(keys.insert((n, taken)), "period {taken} of plan {n} twice");
                }
            }
            assert_eq!(taken, 24, "plan {n} ({tz}, {y}-{m}-{d} {h}:{min})");
        }
        assert_eq!(keys.len(), 24_000);
    }

    #[test]
    fn period_at_is_the_period_whose_bounds_hold_the_instant() {
        let tz = "Pacific/Auckland";
        let a = at(tz, 2027, 1, 31, 0, 10);
        for k in 0..30 {
            let b = boundary(a, tz, 1, k).unwrap();
            assert_eq!(period_at(a, tz, 1, b), Some(k));
            assert_eq!(period_at(a, tz, 1, b - 1), Some((k - 1).max(0)));
        }
        assert_eq!(period_at(a, tz, 1, a - 86_400_000), Some(0));
    }
}
