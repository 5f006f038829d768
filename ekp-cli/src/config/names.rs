//! The one rule for parameter names, from every source: the `[[parameters]]`
//! names of a calibration file and the table names of EKP.jl parameter
//! files ([`super::ekpjl`]).
//!
//! A name becomes a TOML key (`parameters.toml`, `result.toml`), a JSON key
//! (worker models), a CSV header (batch models), a `{{NAME}}` template
//! placeholder and a column of the tables ekp prints; so it must be
//! non-empty, printable (no control character such as a newline, a tab or
//! ESC, no invisible formatting character such as a bidirectional override
//! or a zero-width space) and at most [`MAX_NAME_CHARS`] characters long.

/// The longest parameter name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 256;

/// Why `name` is not a usable parameter name, or `Ok` when it is (see the
/// module documentation for the rule). The message describes the name
/// without repeating it raw: a refused name may hold terminal escapes.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("empty name".into());
    }
    let length = name.chars().count();
    if length > MAX_NAME_CHARS {
        return Err(format!(
            "the name is {length} characters long; at most {MAX_NAME_CHARS}"
        ));
    }
    if let Some((at, c)) = name.chars().enumerate().find(|&(_, c)| !printable(c)) {
        return Err(format!(
            "the name \"{}\" has the unprintable character U+{:04X} at position {}: a name \
             must be printable (it becomes a TOML key and a CSV header)",
            name.escape_debug(),
            u32::from(c),
            at + 1
        ));
    }
    Ok(())
}

/// Not a control character (`char::is_control`: C0, DEL, C1), a line or
/// paragraph separator, or an invisible formatting character (zero-width
/// spaces and joiners, bidirectional marks, embeddings, overrides and
/// isolates, invisible operators, the byte-order mark).
fn printable(c: char) -> bool {
    !(c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass() {
        for name in [
            "F",
            "A",
            "theta",
            "vert_shift",
            "u[2]",
            "a b",
            "σ_ω",
            "Ωμέγα",
            "名前",
            "x-1.5",
            "\"quoted\"",
            "emoji 🙂",
        ] {
            assert_eq!(check_name(name), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn empty_and_blank_names_are_refused() {
        for name in ["", " ", "   ", "\u{3000}"] {
            assert_eq!(check_name(name), Err("empty name".to_string()), "{name:?}");
        }
    }

    #[test]
    fn control_characters_are_refused_wherever_they_are() {
        for c in (0u32..0x20).chain(0x7F..=0x9F).filter_map(char::from_u32) {
            for name in [
                format!("{c}"),
                format!("a{c}"),
                format!("{c}b"),
                format!("a{c}b"),
            ] {
                if name.trim().is_empty() {
                    // A lone whitespace control (`\t`, `\n`, ...) is blank.
                    assert_eq!(check_name(&name), Err("empty name".into()), "{name:?}");
                    continue;
                }
                let message = check_name(&name).err();
                let Some(message) = message else {
                    unreachable!("{name:?} was accepted");
                };
                assert!(
                    message.contains(&format!("U+{:04X}", u32::from(c))),
                    "{message}"
                );
                assert!(!message.chars().any(char::is_control), "{message:?}");
            }
        }
    }

    #[test]
    fn newline_tab_and_escape_are_named_by_position() {
        let message = check_name("ab\ncd").err().unwrap_or_default();
        assert!(message.contains("U+000A at position 3"), "{message}");
        assert!(message.contains(r#""ab\ncd""#), "{message}");
        let message = check_name("x\ty").err().unwrap_or_default();
        assert!(message.contains("U+0009 at position 2"), "{message}");
        let message = check_name("\u{1b}[31mred").err().unwrap_or_default();
        assert!(message.contains("U+001B at position 1"), "{message}");
        assert!(!message.contains('\u{1b}'), "{message:?}");
    }

    #[test]
    fn invisible_formatting_characters_are_refused() {
        for c in [
            '\u{00AD}', '\u{200B}', '\u{200D}', '\u{200E}', '\u{2028}', '\u{2029}', '\u{202E}',
            '\u{2060}', '\u{2066}', '\u{2069}', '\u{FEFF}', '\u{FFFB}',
        ] {
            assert!(
                check_name(&format!("a{c}b")).is_err(),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn length_is_counted_in_characters() {
        let longest = "x".repeat(MAX_NAME_CHARS);
        assert_eq!(check_name(&longest), Ok(()));
        let too_long = "x".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(
            check_name(&too_long),
            Err(format!(
                "the name is {} characters long; at most {MAX_NAME_CHARS}",
                MAX_NAME_CHARS + 1
            ))
        );
        // Multi-byte characters count once each.
        assert_eq!(check_name(&"é".repeat(MAX_NAME_CHARS)), Ok(()));
        assert!(check_name(&"é".repeat(MAX_NAME_CHARS + 1)).is_err());
    }
}
