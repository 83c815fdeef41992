//! Durations as people type them on the command line: `90m`, `2h`, `1h30m`.
//!
//! Only hours and minutes: work windows are planned to the minute. A bare
//! number is refused rather than guessed at.

/// The whole minutes in `text`; zero, a missing unit or an overflow is an error.
pub fn minutes(text: &str) -> anyhow::Result<u32> {
    let trimmed = text.trim();
    let bad = |why: &str| anyhow::anyhow!("duration '{text}' {why}; write it as 90m, 2h or 1h30m");
    if trimmed.is_empty() {
        return Err(bad("is empty"));
    }

    let mut total: u32 = 0;
    let mut digits = String::new();
    let mut units_seen = String::new();
    for c in trimmed.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let per_unit = match c {
            'h' if units_seen.is_empty() => 60,
            'm' if !units_seen.contains('m') => 1,
            _ => return Err(bad(&format!("has '{c}' where h or m belongs"))),
        };
        if digits.is_empty() {
            return Err(bad(&format!("has no number before '{c}'")));
        }
        let amount: u32 = digits.parse().map_err(|_| bad("is too long"))?;
        total = amount
            .checked_mul(per_unit)
            .and_then(|minutes| total.checked_add(minutes))
            .ok_or_else(|| bad("is too long"))?;
        units_seen.push(c);
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(bad("ends in a number without a unit"));
    }
    if total == 0 {
        return Err(bad("is zero"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::minutes;

    #[test]
    fn hours_and_minutes_add_up() {
        assert_eq!(minutes("90m").unwrap(), 90);
        assert_eq!(minutes("2h").unwrap(), 120);
        assert_eq!(minutes("1h30m").unwrap(), 90);
        assert_eq!(minutes(" 4h ").unwrap(), 240);
    }

    #[test]
    fn a_duration_without_units_or_out_of_order_is_refused_with_the_value() {
        for bad in ["", "90", "h", "1m2h", "2h3h", "1.5h", "0m", "-1h", "99999999999h"] {
            let err = minutes(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("'{bad}'")), "{bad}: {err}");
        }
    }
}
