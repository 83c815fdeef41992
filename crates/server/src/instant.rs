//! Instants as people write them: RFC 3339 with an offset, or a civil time
//! with a named IANA zone in brackets (`2026-03-29T02:30[Europe/Berlin]`).
//!
//! A time with neither is refused rather than guessed. A civil time that falls
//! in a daylight-saving gap is moved forward by the gap's length (02:30 on the
//! night clocks jump from 02:00 to 03:00 becomes 03:30), and one that falls in
//! a fold takes the earlier of its two instants; the error for an unknown zone
//! names the zone.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

/// Parses an instant; `field` names it in the error.
pub fn parse(field: &str, raw: &str) -> Result<Timestamp, String> {
    let raw = raw.trim();
    if let Some(open) = raw.find('[') {
        let zone = raw[open + 1..].strip_suffix(']').ok_or_else(|| {
            format!("{field} '{raw}': a zone is written in brackets at the end, as [Europe/Berlin]")
        })?;
        let civil: DateTime = raw[..open].parse().map_err(|err| {
            format!("{field} '{raw}' is not a date and time such as 2026-03-29T02:30: {err}")
        })?;
        let zone = TimeZone::get(zone)
            .map_err(|_| format!("{field} '{raw}': unknown time zone '{zone}'"))?;
        return zone
            .to_ambiguous_timestamp(civil)
            .compatible()
            .map_err(|err| format!("{field} '{raw}' cannot be placed in time: {err}"));
    }
    raw.parse::<Timestamp>().map_err(|_| {
        format!(
            "{field} '{raw}' needs an offset or a zone: write 2026-03-29T02:30:00+02:00, 2026-03-29T00:30:00Z or 2026-03-29T02:30[Europe/Berlin]"
        )
    })
}

/// Checks that a zone name is in the time zone database.
pub fn check_zone(name: &str) -> Result<(), String> {
    TimeZone::get(name).map(|_| ()).map_err(|_| format!("unknown time zone '{name}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_utc_are_accepted() {
        let a = parse("test_date", "2026-03-29T02:30:00+02:00").unwrap();
        let b = parse("test_date", "2026-03-29T00:30:00Z").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn a_named_zone_places_the_civil_time() {
        let at = parse("start", "2026-07-01T09:00[Europe/Berlin]").unwrap();
        assert_eq!(at.to_string(), "2026-07-01T07:00:00Z");
    }

    #[test]
    fn a_time_in_the_spring_gap_moves_forward_by_the_gap() {
        // Europe/Berlin jumps from 02:00 to 03:00 on 2026-03-29.
        let at = parse("start", "2026-03-29T02:30[Europe/Berlin]").unwrap();
        assert_eq!(at.to_string(), "2026-03-29T01:30:00Z");
    }

    #[test]
    fn a_time_in_the_autumn_fold_takes_the_earlier_instant() {
        // 02:30 happens twice on 2026-10-25 in Berlin; the first is at +02:00.
        let at = parse("start", "2026-10-25T02:30[Europe/Berlin]").unwrap();
        assert_eq!(at.to_string(), "2026-10-25T00:30:00Z");
    }

    #[test]
    fn a_time_without_offset_or_zone_is_refused() {
        let err = parse("test_date", "2026-03-29T02:30").unwrap_err();
        assert!(err.contains("needs an offset or a zone"), "{err}");
    }

    #[test]
    fn an_unknown_zone_is_named() {
        let err = parse("start", "2026-03-29T02:30[Mars/Olympus]").unwrap_err();
        assert!(err.contains("unknown time zone 'Mars/Olympus'"), "{err}");
    }
}
