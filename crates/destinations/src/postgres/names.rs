//! Identifiers as PostgreSQL stores them. PostgreSQL silently truncates names to 63 bytes, so
//! two long custom-field names sharing a prefix would collide; instead long names are shortened
//! by a pure function of the full name, and every later run maps them the same way without any
//! stored mapping.

use super::MAX_IDENTIFIER_BYTES;

/// Bytes of the original name kept before the hash suffix: 54 + `_` + 8 hex = 63.
const KEPT_PREFIX_BYTES: usize = 54;

/// The name PostgreSQL stores for the engine's `name`: unchanged when it fits in 63 bytes (NUL
/// characters, which identifiers cannot hold, are dropped), otherwise its first 54 bytes (cut
/// on a character boundary) + `_` + 8 hex digits of the FNV-1a hash of the full name.
pub fn stored_name(name: &str) -> String {
    let name = if name.contains('\0') {
        name.replace('\0', "")
    } else {
        name.to_owned()
    };
    if name.len() <= MAX_IDENTIFIER_BYTES {
        return name;
    }
    let mut cut = KEPT_PREFIX_BYTES;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{:08x}", &name[..cut], fnv1a32(name.as_bytes()))
}

/// FNV-1a, 32 bits: fixed by its definition, so names stay stable across Rust and crate versions.
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept() {
        assert_eq!(stored_name("deals"), "deals");
        assert_eq!(stored_name(&"x".repeat(63)), "x".repeat(63));
        assert_eq!(stored_name("a\0b"), "ab");
    }

    #[test]
    fn long_names_are_shortened_deterministically_and_distinctly() {
        let a = format!("{}_first", "custom field ".repeat(6));
        let b = format!("{}_second", "custom field ".repeat(6));
        let (sa, sb) = (stored_name(&a), stored_name(&b));
        assert_eq!(sa.len(), 63);
        assert_ne!(sa, sb);
        assert_eq!(sa, stored_name(&a));
        assert!(sa.starts_with(&a[..54]));
        // Known value: fixes the rule so a later version cannot silently remap existing columns.
        assert_eq!(
            stored_name(&"x".repeat(64)),
            format!(
                "{}_{:08x}",
                "x".repeat(54),
                fnv1a32("x".repeat(64).as_bytes())
            )
        );
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
    }

    #[test]
    fn multibyte_names_are_cut_on_character_boundaries() {
        let name = "é".repeat(40); // 80 bytes
        let short = stored_name(&name);
        assert!(short.len() <= 63);
        assert!(short.starts_with(&"é".repeat(27)));
    }
}
