//! Compact storage of endpoint URLs, the largest part of a subscription record.
//!
//! The well-known push-service prefixes become one byte, and the rest — almost always a
//! base64url token, FCM's with one `:` in it — is packed at 6 bits a character. A 190-character
//! FCM endpoint takes 117 bytes instead of 190. Anything else is stored as it is.

use crate::store::StoreError;

/// Prefixes stored as a one-byte code. Never reorder or remove: the codes are on disk.
const PREFIXES: &[&str] = &[
    "https://fcm.googleapis.com/fcm/send/",
    "https://updates.push.services.mozilla.com/wpush/v2/",
    "https://updates.push.services.mozilla.com/wpush/v1/",
    "https://web.push.apple.com/",
    "https://fcm.googleapis.com/wp/",
    "https://android.googleapis.com/gcm/send/",
];

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// How the remainder after the prefix is stored.
const RAW: u8 = 0;
const PACKED: u8 = 1;
const PACKED_WITH_COLON: u8 = 2;

fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

/// Appends the encoded endpoint to `out`.
pub fn encode(endpoint: &str, out: &mut Vec<u8>) {
    let (code, rest) = PREFIXES
        .iter()
        .enumerate()
        .find_map(|(i, p)| endpoint.strip_prefix(p).map(|rest| (i as u8 + 1, rest)))
        .unwrap_or((0, endpoint));
    out.push(code);
    let bytes = rest.as_bytes();
    let colon = bytes.iter().position(|&b| b == b':');
    let packable = bytes.len() <= u16::MAX as usize
        && bytes
            .iter()
            .enumerate()
            .all(|(i, &b)| sextet(b).is_some() || Some(i) == colon);
    if !packable {
        out.push(RAW);
        put_len(out, bytes.len());
        out.extend_from_slice(bytes);
        return;
    }
    let mut chars: Vec<u8> = Vec::with_capacity(bytes.len());
    match colon {
        Some(at) => {
            out.push(PACKED_WITH_COLON);
            put_len(out, at);
            chars.extend_from_slice(&bytes[..at]);
            chars.extend_from_slice(&bytes[at + 1..]);
        }
        None => {
            out.push(PACKED);
            chars.extend_from_slice(bytes);
        }
    }
    put_len(out, chars.len());
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in &chars {
        // Every char was checked to be in the alphabet above.
        acc = (acc << 6) | u32::from(sextet(c).unwrap_or(0));
        bits += 6;
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits > 0 {
        out.push((acc << (8 - bits)) as u8);
    }
}

/// Decodes an endpoint from the front of `input`, returning it and the bytes after it.
pub fn decode(input: &[u8]) -> Result<(String, &[u8]), StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("endpoint: {what}"));
    let (&code, input) = input.split_first().ok_or_else(|| corrupt("empty"))?;
    let prefix = match code {
        0 => "",
        n => PREFIXES
            .get(usize::from(n) - 1)
            .ok_or_else(|| corrupt("unknown prefix code"))?,
    };
    let (&kind, input) = input.split_first().ok_or_else(|| corrupt("no kind"))?;
    let mut endpoint = String::from(prefix);
    match kind {
        RAW => {
            let (len, input) = take_len(input)?;
            let (raw, rest) = split(input, len)?;
            endpoint.push_str(std::str::from_utf8(raw).map_err(|_| corrupt("not UTF-8"))?);
            Ok((endpoint, rest))
        }
        PACKED | PACKED_WITH_COLON => {
            let (colon, input) = if kind == PACKED_WITH_COLON {
                let (at, input) = take_len(input)?;
                (Some(at), input)
            } else {
                (None, input)
            };
            let (count, input) = take_len(input)?;
            let packed_len = (count * 6).div_ceil(8);
            let (packed, rest) = split(input, packed_len)?;
            let mut acc: u32 = 0;
            let mut bits = 0;
            let mut bytes = packed.iter();
            for i in 0..count {
                if Some(i) == colon {
                    endpoint.push(':');
                }
                while bits < 6 {
                    acc = (acc << 8) | u32::from(*bytes.next().ok_or_else(|| corrupt("short"))?);
                    bits += 8;
                }
                bits -= 6;
                endpoint.push(char::from(ALPHABET[((acc >> bits) & 0x3f) as usize]));
            }
            if colon == Some(count) {
                endpoint.push(':');
            }
            Ok((endpoint, rest))
        }
        _ => Err(corrupt("unknown kind")),
    }
}

/// Lengths up to 2^14 as one or two bytes.
pub(super) fn put_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        out.push(0x80 | (len >> 8) as u8);
        out.push(len as u8);
    }
}

pub(super) fn take_len(input: &[u8]) -> Result<(usize, &[u8]), StoreError> {
    match input {
        [first, rest @ ..] if first & 0x80 == 0 => Ok((usize::from(*first), rest)),
        [first, second, rest @ ..] => Ok((
            (usize::from(first & 0x7f) << 8) | usize::from(*second),
            rest,
        )),
        _ => Err(StoreError::Corrupt("truncated length".into())),
    }
}

pub(super) fn split(input: &[u8], len: usize) -> Result<(&[u8], &[u8]), StoreError> {
    if input.len() < len {
        return Err(StoreError::Corrupt("truncated record".into()));
    }
    Ok(input.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(endpoint: &str) -> usize {
        let mut out = Vec::new();
        encode(endpoint, &mut out);
        out.extend_from_slice(b"tail");
        let (decoded, rest) = decode(&out).unwrap();
        assert_eq!(decoded, endpoint);
        assert_eq!(rest, b"tail");
        out.len() - 4
    }

    #[test]
    fn fcm_endpoints_shrink_and_everything_round_trips() {
        let token = format!("dK9xAb3_Qz1:APA91b{}", "xY-9".repeat(34));
        let fcm = format!("https://fcm.googleapis.com/fcm/send/{token}");
        assert_eq!(fcm.len(), 190);
        assert!(round_trip(&fcm) <= 120, "{}", round_trip(&fcm));
        round_trip("https://updates.push.services.mozilla.com/wpush/v2/gAAAAABh_x-9");
        round_trip("https://web.push.apple.com/QGuQyavXutnMH");
        round_trip("https://wns2-par02p.notify.windows.com/w/?token=BQYAAAB%2b");
        round_trip("https://127.0.0.1:8443/push/abc");
        round_trip("https://fcm.googleapis.com/fcm/send/ends-with-colon:");
        round_trip("https://fcm.googleapis.com/fcm/send/");
        round_trip(&format!("https://push.example/{}", "é".repeat(300)));
    }

    proptest! {
        #[test]
        fn any_string_round_trips(s in ".{0,300}", prefix in 0usize..7) {
            let endpoint = match prefix {
                0 => s.clone(),
                n => format!("{}{s}", PREFIXES[n - 1]),
            };
            round_trip(&endpoint);
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }
    }
}
