//! Deterministic record ids.
//!
//! An id is the XXH3-128 hash of its inputs, as 32 lowercase hex digits. XXH3 is a fixed
//! specification, so ids are stable across versions, machines and replays.

use xxhash_rust::xxh3::{xxh3_128, Xxh3};

/// Id of a record derived from its content (the ingest assigns these: a collector that
/// retries the same batch produces the same id, so downstream deduplication works).
pub fn content_id(bytes: &[u8]) -> String {
    let mut h = Xxh3::new();
    h.update(CONTENT_TAG);
    h.update(bytes);
    hex128(h.digest128())
}

/// What a content id hashes before the content.
pub(crate) const CONTENT_TAG: &[u8; 8] = b"content\0";

/// [`content_id`] of the bytes after [`CONTENT_TAG`] in `tagged`, hashed at once (the
/// hasher that takes a stream sets up more than it hashes for a record of a few hundred
/// bytes).
pub(crate) fn content_id_tagged(tagged: &[u8]) -> String {
    debug_assert!(tagged.starts_with(CONTENT_TAG));
    hex128(xxh3_128(tagged))
}

/// Id of a record derived from named parts, for example the input topic, partition and
/// offset that caused an output. Parts are length-prefixed, so `("ab","c")` and
/// `("a","bc")` differ.
pub fn derived_id(parts: &[&[u8]]) -> String {
    const TAG: &[u8] = b"derived\0";
    let len = TAG.len() + parts.iter().map(|p| 8 + p.len()).sum::<usize>();
    // The parts of an output's id fit on the stack: hashed at once, as XXH3 hashes a stream
    // of the same bytes (the hasher that takes a stream sets up more than it hashes here).
    let mut stack = [0u8; 128];
    let mut heap = Vec::new();
    let buf: &mut [u8] = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap
    };
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        buf[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(TAG);
    for part in parts {
        put(&(part.len() as u64).to_be_bytes());
        put(part);
    }
    hex128(xxh3_128(buf))
}

/// 32 lowercase hex digits, most significant first.
fn hex128(v: u128) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, d) in out.iter_mut().enumerate() {
        *d = DIGITS[((v >> (124 - 4 * i)) & 0xf) as usize];
    }
    out.iter().map(|&d| char::from(d)).collect()
}

/// The instance id of an unhosted class without key properties (a group's singleton
/// instance), as the instance space derives every instance id: from the class owning the
/// identity, the key values (none) and the host (none).
pub fn singleton_id(class: &str) -> String {
    derived_id(&[b"instance", class.as_bytes(), b""])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids of earlier versions: an output's id must not change across versions (a
    /// replay after an upgrade produces the same ids, and downstream deduplicates by them).
    #[test]
    fn derived_ids_are_those_of_earlier_versions() {
        assert_eq!(
            derived_id(&[
                b"health",
                b"healthstream.perf",
                &3i32.to_be_bytes(),
                &42i64.to_be_bytes(),
                &7u64.to_be_bytes()
            ]),
            "e2eb76bab8ab222ac582adf6eaa11da9"
        );
        assert_eq!(derived_id(&[]), "a27f110b5611ae09237abbe6300fbee9");
        // Longer than what is hashed on the stack.
        assert_eq!(
            derived_id(&[&[7u8; 300]]),
            "1a261138a77128f24c12c297944c9942"
        );
        assert_eq!(hex128(0xab), format!("{:032x}", 0xab));
        assert_eq!(hex128(u128::MAX), "f".repeat(32));
    }

    #[test]
    fn ids_are_stable_and_distinguish_part_boundaries() {
        assert_eq!(content_id(b"x"), content_id(b"x"));
        assert_eq!(content_id(b"x"), content_id_tagged(b"content\0x"));
        assert_ne!(content_id(b"x"), content_id(b"y"));
        assert_ne!(derived_id(&[b"ab", b"c"]), derived_id(&[b"a", b"bc"]));
        assert_eq!(derived_id(&[b"t", b"1"]).len(), 32);
    }
}
