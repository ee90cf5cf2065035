//! The memberlist (gossip) key's rules, shared by the controller, which
//! creates and checks the Secret, and the speakers, which read it from
//! the mounted file: one definition, so the two can never disagree about
//! which keys work.

/// The key in the Secret's `data` that the speaker's volume mounts.
pub const SECRET_KEY: &str = "secretkey";

/// The shortest key accepted: 16 bytes (128 bits) of key material, after
/// [`trim_secret`].
pub const MIN_SECRET_LEN: usize = 16;

/// `bytes` without trailing `\n` and `\r`, as the secret is read: secrets
/// made with `echo` or an editor end with one, and a speaker whose key
/// differs from its peers' by a newline would silently never join.
///
/// ```
/// assert_eq!(ferrolb_crds::memberlist::trim_secret(b"key\r\n"), b"key");
/// ```
pub fn trim_secret(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b'\n' | b'\r'))
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_trailing_newlines_are_trimmed() {
        assert_eq!(trim_secret(b"a\nb\n\r\n"), b"a\nb");
        assert_eq!(trim_secret(b"\n\n"), b"");
        assert_eq!(trim_secret(b""), b"");
        assert_eq!(trim_secret(b" key "), b" key ");
    }
}
