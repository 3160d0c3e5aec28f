//! JSON text into a `serde_json::Value`, each object built in one go, and a value back
//! into JSON text ([`to_vec`], the bytes serde_json writes).
//!
//! Most documents are read by [`plain`] in one pass; it hands anything out of the ordinary
//! to the path below, serde_json's parser with objects gathered first.
//!
//! `serde_json::from_slice::<Value>` inserts an object's members one by one into its
//! `BTreeMap`, each insert searching the tree (a legacy user record of two dozen members:
//! 11k of the 26k instructions its parse took, callgrind). Here an object's members are
//! gathered in a vector and the map is built from it at once (`Map: FromIterator`, which
//! sorts them and builds the tree bottom-up): 9k instead of 11k for that record. The
//! result is the same value: for a member given twice the last one wins, as with
//! serde_json; the parser, its errors and its depth limit are serde_json's own. One
//! difference: with serde_json's `raw_value` feature on (a dependency turns it on),
//! `from_slice::<Value>` reads an object whose only member is named
//! `$serde_json::private::RawValue` as the JSON text in that member's string; here it stays
//! the object the text says it is.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Parses `bytes` as one JSON value (whitespace around it allowed).
pub fn from_slice(bytes: &[u8]) -> serde_json::Result<Value> {
    if let Some(v) = plain::parse(bytes) {
        return Ok(v);
    }
    serde_json::from_slice::<Built>(bytes).map(|b| b.0)
}

/// `value` as compact JSON text: the same bytes as `serde_json::to_vec` (a property test
/// holds it to that), written in one pass without serde's serializer: each string's
/// unescaped runs are found eight bytes at a time and copied whole. A 1.1 KB SCIM user took
/// 7.5k instructions through `serde_json::to_vec` (callgrind), about 190 a string.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    write_value(&mut out, value);
    out
}

/// Appends `value` as compact JSON text to `out` (see [`to_vec`]).
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // serde_json's own digits (itoa, ryu); writing to a vector does not fail.
        Value::Number(n) => {
            let _ = serde_json::to_writer(&mut *out, n);
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => write_array(out, items, write_value),
        Value::Object(map) => {
            write_object(out, map.iter().map(|(k, v)| (k.as_str(), v)), write_value)
        }
    }
}

/// `[item,…]`, each item written by `write`.
pub fn write_array<T>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    mut write: impl FnMut(&mut Vec<u8>, T),
) {
    out.push(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

/// `{"key":value,…}` in the order given, each value written by `write`.
pub fn write_object<'k, T>(
    out: &mut Vec<u8>,
    members: impl IntoIterator<Item = (&'k str, T)>,
    mut write: impl FnMut(&mut Vec<u8>, T),
) {
    out.push(b'{');
    for (i, (k, v)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        write(out, v);
    }
    out.push(b'}');
}

/// A string as serde_json writes it: `"` and `\\` escaped with a backslash, the control
/// characters as `\b \t \n \f \r` or `\u00xx` (lower-case hex), everything else as it is.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut rest = s.as_bytes();
    while let Some(at) = special_byte_at(rest) {
        let (run, tail) = rest.split_at(at);
        out.extend_from_slice(run);
        let Some((&b, tail)) = tail.split_first() else {
            break;
        };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x09 => out.extend_from_slice(b"\\t"),
            0x0a => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x0d => out.extend_from_slice(b"\\r"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
        rest = tail;
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// Where the first `"`, `\\` or control character of `s` is: eight bytes at a time (a byte
/// is one of them when it is zero after an exclusive or with `"` or `\\`, or is below 0x20:
/// the usual bit tricks), the last few bytes one by one. In a word that holds one, the
/// lowest flagged byte is the first such byte (a flag above a true one may be false: the
/// borrow of a subtraction only runs upwards), so its place is the flags' trailing zeros.
fn special_byte_at(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const QUOTE: u64 = ONES * b'"' as u64;
    const BACKSLASH: u64 = ONES * b'\\' as u64;
    let mut words = s.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let x = u64::from_le_bytes(<[u8; 8]>::try_from(word).unwrap_or_default());
        let (q, b) = (x ^ QUOTE, x ^ BACKSLASH);
        let flags = (q.wrapping_sub(ONES) & !q
            | b.wrapping_sub(ONES) & !b
            | x.wrapping_sub(ONES * 0x20) & !x)
            & HIGH;
        if flags != 0 {
            return Some(at + (flags.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| at + i)
}

/// The documents a legacy app and Entra send nearly always: strings without escapes,
/// integers, objects and arrays nested a little. Read here in one pass over the bytes
/// (validated as UTF-8 once), each string copied straight out of the text, each object's
/// members sorted (stable, so for a member given twice the last still wins; see
/// [`plain::sort_members`]) before its map is built: a 507-byte user record of the demo app took about 25k
/// instructions through serde_json's deserializer (callgrind). Anything else (an escape, a
/// control character, a fraction or exponent, an integer of 19 digits or more, `-0`, deep
/// nesting, any error) gives `None` and the document goes to serde_json whole, so what this
/// accepts is read as the serde_json path reads it (as `serde_json::from_slice::<Value>`
/// does, but for its private raw-value member: see the module's note) and every error is
/// serde_json's own.
pub(crate) mod plain {
    use serde_json::{Map, Value};

    /// Nesting beyond this is left to serde_json (whose limit is 128).
    const MAX_DEPTH: usize = 64;

    /// What the reader makes of what it reads. One grammar serves every form a document is
    /// read into (a `serde_json::Value`, a mapping's own values, nothing but a check), so
    /// each accepts exactly the same documents.
    pub(crate) trait Build<'t> {
        type Out;
        type Items;
        type Members;
        /// Whether strings are read out (`false`: only stepped over, [`Build::string`] is
        /// given `""`).
        const TEXT: bool = true;
        fn null() -> Self::Out;
        fn bool(b: bool) -> Self::Out;
        /// At most 18 digits: always within `i64`.
        fn int(n: i64) -> Self::Out;
        /// Text between quotes, without escapes or control characters.
        fn string(s: &'t str) -> Self::Out;
        fn items() -> Self::Items;
        fn item(items: &mut Self::Items, v: Self::Out);
        fn array(items: Self::Items) -> Self::Out;
        fn members() -> Self::Members;
        /// Members come in the document's order; for a key given twice the last one is
        /// the value (serde_json's rule).
        fn member(members: &mut Self::Members, key: &'t str, v: Self::Out);
        fn object(members: Self::Members) -> Self::Out;
    }

    pub(super) fn parse(bytes: &[u8]) -> Option<Value> {
        parse_as::<ToValue>(std::str::from_utf8(bytes).ok()?)
    }

    /// Reads `text` as one JSON value into `B`'s form; `None` for anything the plain
    /// reader leaves to serde_json (see the module's note), including every error.
    pub(crate) fn parse_as<'t, B: Build<'t>>(text: &'t str) -> Option<B::Out> {
        let mut p = Parser {
            text,
            s: text.as_bytes(),
            i: 0,
        };
        p.ws();
        let v = p.value::<B>(0)?;
        p.ws();
        (p.i == p.s.len()).then_some(v)
    }

    /// Whether `bytes` is a document the plain reader reads (and so valid JSON).
    #[cfg(test)]
    pub(crate) fn check(bytes: &[u8]) -> bool {
        std::str::from_utf8(bytes).is_ok_and(|t| parse_as::<Check>(t).is_some())
    }

    /// Where the items of a list page and its total lie in the page's text ([`locate`]).
    #[derive(Debug, Default, PartialEq)]
    pub(crate) struct Located {
        /// Each element of the array, as a byte range of the text.
        pub items: Vec<std::ops::Range<usize>>,
        /// The value the total's member names lead to, if it is there.
        pub total: Option<std::ops::Range<usize>>,
    }

    /// Reads `text` as one JSON value as [`parse_as`] does, building nothing, and finds
    /// where the elements of the array that the member names `items` lead to lie (what the
    /// JSONPath `$.items…[*]` selects) and the value that the names `total` lead to (what
    /// `$.total…` selects). `None` where [`parse_as`] would give `None`, where `items` does
    /// not lead to an array, and where a member on either way is given twice (the reader
    /// of `Value`s settles those as serde_json does).
    pub(crate) fn locate(
        text: &str,
        items: &[String],
        total: Option<&[String]>,
    ) -> Option<Located> {
        let mut p = Parser {
            text,
            s: text.as_bytes(),
            i: 0,
        };
        p.ws();
        let mut found = (None, None);
        p.locate(0, Some(items), total, &mut found)?;
        p.ws();
        (p.i == p.s.len()).then_some(())?;
        Some(Located {
            items: found.0?,
            total: found.1,
        })
    }

    /// Builds nothing: [`check`], and the values [`locate`] steps over.
    struct Check;

    impl<'t> Build<'t> for Check {
        const TEXT: bool = false;
        type Out = ();
        type Items = ();
        type Members = ();
        fn null() {}
        fn bool(_: bool) {}
        fn int(_: i64) {}
        fn string(_: &'t str) {}
        fn items() {}
        fn item(_: &mut (), _: ()) {}
        fn array(_: ()) {}
        fn members() {}
        fn member(_: &mut (), _: &'t str, _: ()) {}
        fn object(_: ()) {}
    }

    /// Builds a `serde_json::Value`, each object's members sorted ([`sort_members`]) and
    /// its map built from them at once.
    struct ToValue;

    impl<'t> Build<'t> for ToValue {
        type Out = Value;
        type Items = Vec<Value>;
        type Members = Vec<(String, Value)>;
        fn null() -> Value {
            Value::Null
        }
        fn bool(b: bool) -> Value {
            Value::Bool(b)
        }
        fn int(n: i64) -> Value {
            Value::from(n)
        }
        fn string(s: &'t str) -> Value {
            Value::String(s.to_owned())
        }
        fn items() -> Vec<Value> {
            Vec::new()
        }
        fn item(items: &mut Vec<Value>, v: Value) {
            items.push(v);
        }
        fn array(items: Vec<Value>) -> Value {
            Value::Array(items)
        }
        fn members() -> Vec<(String, Value)> {
            Vec::with_capacity(8)
        }
        fn member(members: &mut Vec<(String, Value)>, key: &'t str, v: Value) {
            members.push((key.to_owned(), v));
        }
        fn object(mut members: Vec<(String, Value)>) -> Value {
            sort_members(&mut members);
            // Sorted now: the build's check of the order is one pass, and of equal keys it
            // keeps the last.
            Value::Object(members.into_iter().collect::<Map<_, _>>())
        }
    }

    struct Parser<'a> {
        text: &'a str,
        s: &'a [u8],
        i: usize,
    }

    impl<'a> Parser<'a> {
        fn ws(&mut self) {
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
                self.i += 1;
            }
        }

        fn peek(&self) -> Option<u8> {
            self.s.get(self.i).copied()
        }

        fn value<B: Build<'a>>(&mut self, depth: usize) -> Option<B::Out> {
            match self.peek()? {
                b'"' if B::TEXT => self.string().map(B::string),
                b'"' => self.string_end().map(|_| B::string("")),
                b'{' => self.object::<B>(depth),
                b'[' => self.array::<B>(depth),
                b't' => self.word(b"true").then(|| B::bool(true)),
                b'f' => self.word(b"false").then(|| B::bool(false)),
                b'n' => self.word(b"null").then(B::null),
                b'-' | b'0'..=b'9' => self.integer().map(B::int),
                _ => None,
            }
        }

        fn word(&mut self, word: &[u8]) -> bool {
            let Some(end) = self.i.checked_add(word.len()) else {
                return false;
            };
            if self.s.get(self.i..end) != Some(word) {
                return false;
            }
            self.i = end;
            true
        }
        /// [`Parser::string`] stepped over: where its text starts, and past it.
        fn string_end(&mut self) -> Option<usize> {
            let start = self.i + 1;
            let rest = self.s.get(start..)?;
            let len = super::special_byte_at(rest)?;
            if rest[len] != b'"' {
                return None;
            }
            self.i = start + len + 1;
            Some(start)
        }

        /// A string at `"` without escapes or control characters.
        fn string(&mut self) -> Option<&'a str> {
            let start = self.string_end()?;
            // Both ends are at a `"`, so at character boundaries.
            self.text.get(start..self.i - 1)
        }

        /// `-?(0|[1-9][0-9]*)` of at most 18 digits, not followed by a fraction or an
        /// exponent; not `-0` (serde_json reads it as the float -0.0).
        fn integer(&mut self) -> Option<i64> {
            let negative = self.peek() == Some(b'-');
            if negative {
                self.i += 1;
            }
            let start = self.i;
            let mut n: u64 = 0;
            while let Some(d @ b'0'..=b'9') = self.peek() {
                self.i += 1;
                if self.i - start > 18 {
                    return None;
                }
                n = n * 10 + u64::from(d - b'0');
            }
            let digits = self.i - start;
            if digits == 0 || (digits > 1 && self.s[start] == b'0') {
                return None;
            }
            if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
                return None;
            }
            if negative {
                if n == 0 {
                    return None;
                }
                // At most 18 digits: within i64.
                Some(-i64::try_from(n).ok()?)
            } else {
                i64::try_from(n).ok()
            }
        }

        /// Steps into an array or object at its opening bracket: `Some(true)` when it closes
        /// at once with `close`; `None` past the nesting this reads.
        fn open(&mut self, depth: usize, close: u8) -> Option<bool> {
            if depth >= MAX_DEPTH {
                return None;
            }
            self.i += 1;
            self.ws();
            let empty = self.peek()? == close;
            if empty {
                self.i += 1;
            }
            Some(empty)
        }

        /// After an item: `Some(false)` past a `,`, `Some(true)` past `close`.
        fn next(&mut self, close: u8) -> Option<bool> {
            self.ws();
            let b = self.peek()?;
            self.i += 1;
            if b == b',' {
                self.ws();
                Some(false)
            } else {
                (b == close).then_some(true)
            }
        }

        fn array<B: Build<'a>>(&mut self, depth: usize) -> Option<B::Out> {
            let mut items = B::items();
            if self.open(depth, b']')? {
                return Some(B::array(items));
            }
            loop {
                let v = self.value::<B>(depth + 1)?;
                B::item(&mut items, v);
                if self.next(b']')? {
                    return Some(B::array(items));
                }
            }
        }

        /// [`locate`] at a value: `items` / `total` are the member names still to follow
        /// from here when the value is on that way (`Some(&[])`: this is it).
        fn locate(
            &mut self,
            depth: usize,
            items: Option<&[String]>,
            total: Option<&[String]>,
            found: &mut (
                Option<Vec<std::ops::Range<usize>>>,
                Option<std::ops::Range<usize>>,
            ),
        ) -> Option<()> {
            let start = self.i;
            let deeper = |names: Option<&[String]>| names.is_some_and(|n| !n.is_empty());
            match self.peek()? {
                b'[' if items.is_some_and(<[String]>::is_empty) => {
                    let mut ranges = Vec::new();
                    if !self.open(depth, b']')? {
                        loop {
                            let at = self.i;
                            self.value::<Check>(depth + 1)?;
                            ranges.push(at..self.i);
                            if self.next(b']')? {
                                break;
                            }
                        }
                    }
                    found.0 = Some(ranges);
                }
                b'{' if deeper(items) || deeper(total) => {
                    fn on_way<'n>(names: Option<&'n [String]>, key: &str) -> Option<&'n [String]> {
                        names
                            .and_then(<[String]>::split_first)
                            .filter(|(name, _)| name.as_str() == key)
                            .map(|(_, rest)| rest)
                    }
                    let (mut items_seen, mut total_seen) = (false, false);
                    if !self.open(depth, b'}')? {
                        loop {
                            let key = self.member_name()?;
                            let (sub_items, sub_total) = (on_way(items, key), on_way(total, key));
                            for (on, seen) in
                                [(&sub_items, &mut items_seen), (&sub_total, &mut total_seen)]
                            {
                                if on.is_some() {
                                    if *seen {
                                        return None;
                                    }
                                    *seen = true;
                                }
                            }
                            self.locate(depth + 1, sub_items, sub_total, found)?;
                            if self.next(b'}')? {
                                break;
                            }
                        }
                    }
                }
                _ => {
                    self.value::<Check>(depth)?;
                }
            }
            if total.is_some_and(<[String]>::is_empty) {
                found.1 = Some(start..self.i);
            }
            Some(())
        }

        /// A member's name and the `:` after it, with the white space around that.
        fn member_name(&mut self) -> Option<&'a str> {
            if self.peek()? != b'"' {
                return None;
            }
            let key = self.string()?;
            self.colon()?;
            Some(key)
        }

        /// [`Parser::member_name`] stepped over.
        fn member_end(&mut self) -> Option<()> {
            if self.peek()? != b'"' {
                return None;
            }
            self.string_end()?;
            self.colon()
        }

        /// The `:` after a member's name, with the white space around it.
        fn colon(&mut self) -> Option<()> {
            self.ws();
            if self.peek()? != b':' {
                return None;
            }
            self.i += 1;
            self.ws();
            Some(())
        }

        fn object<B: Build<'a>>(&mut self, depth: usize) -> Option<B::Out> {
            let mut members = B::members();
            if self.open(depth, b'}')? {
                return Some(B::object(members));
            }
            loop {
                let key = if B::TEXT {
                    self.member_name()?
                } else {
                    self.member_end()?;
                    ""
                };
                let v = self.value::<B>(depth + 1)?;
                B::member(&mut members, key, v);
                if self.next(b'}')? {
                    return Some(B::object(members));
                }
            }
        }
    }

    /// Objects of fewer members are sorted without the kept orders.
    const REMEMBER_FROM: usize = 8;

    /// An object's members in key order (a stable sort: of equal keys the one given last
    /// stays last, as the maps built from them keep it).
    ///
    /// The objects read most are a legacy app's records, and one endpoint sends its
    /// records' members in one order. So the order an object's keys were put in (as a
    /// permutation) is kept per thread with the key sequence it was worked out for, one
    /// per member count (up to [`MAX_KEPT`] counts, sequences up to [`MAX_KEPT_KEYS`]
    /// bytes), and an object whose keys are that same sequence, compared whole,
    /// is put in order by it: building a record of 25 members as a mapping's map took
    /// about 10k instructions with its members sorted by binary insertion (callgrind), and
    /// 3.4k with its order known.
    /// Objects of other keys are sorted by binary insertion and their order kept in turn.
    pub(crate) fn sort_members<K: AsRef<str>, V>(members: &mut [(K, V)]) {
        let n = members.len();
        if n < 2 {
            return;
        }
        if !(REMEMBER_FROM..=usize::from(u8::MAX)).contains(&n) {
            members.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
            return;
        }
        ORDERS.with(|orders| {
            let Ok(mut orders) = orders.try_borrow_mut() else {
                members.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
                return;
            };
            let Orders { keys, kept } = &mut *orders;
            // The key sequence: each key's length, then its bytes.
            keys.clear();
            for (k, _) in members.iter() {
                let k = k.as_ref().as_bytes();
                keys.extend_from_slice(&(k.len() as u64).to_le_bytes());
                keys.extend_from_slice(k);
            }
            if keys.len() > MAX_KEPT_KEYS {
                // Not kept: a few such orders would hold on to a lot of memory per thread.
                members.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
                return;
            }
            let slot = kept.iter().position(|o| o.order.len() == n);
            let order = match slot {
                Some(at) if kept[at].keys == *keys => &kept[at].order,
                _ => {
                    let order = insertion_order(members);
                    let new = KeptOrder {
                        keys: keys.clone(),
                        order,
                    };
                    let at = match slot {
                        Some(at) => {
                            kept[at] = new;
                            at
                        }
                        None if kept.len() < MAX_KEPT => {
                            kept.push(new);
                            kept.len() - 1
                        }
                        None => {
                            // Full: the oldest goes.
                            kept.remove(0);
                            kept.push(new);
                            kept.len() - 1
                        }
                    };
                    &kept[at].order
                }
            };
            permute(members, order);
        });
    }

    /// Member counts whose order is kept, per thread.
    const MAX_KEPT: usize = 8;

    /// The longest key sequence (in bytes, see [`sort_members`]) whose order is kept.
    const MAX_KEPT_KEYS: usize = 4096;

    struct KeptOrder {
        /// The key sequence (see [`sort_members`]).
        keys: Vec<u8>,
        /// `order[i]`: which member goes to place `i`.
        order: Vec<u8>,
    }

    #[derive(Default)]
    struct Orders {
        /// Scratch for the key sequence of the object at hand.
        keys: Vec<u8>,
        kept: Vec<KeptOrder>,
    }

    thread_local! {
        static ORDERS: std::cell::RefCell<Orders> = std::cell::RefCell::default();
    }

    /// The stable order of `members` by key, by binary insertion of their indices.
    fn insertion_order<K: AsRef<str>, V>(members: &[(K, V)]) -> Vec<u8> {
        let mut order: Vec<u8> = Vec::with_capacity(members.len());
        for (i, (key, _)) in members.iter().enumerate() {
            let key = key.as_ref();
            // After every member whose key is not greater: equal keys keep their order.
            let at = order.partition_point(|&j| members[usize::from(j)].0.as_ref() <= key);
            // At most `u8::MAX` members come here.
            order.insert(at, u8::try_from(i).unwrap_or(u8::MAX));
        }
        order
    }

    /// Puts `members[order[i]]` at place `i`, following each cycle of the permutation.
    fn permute<T>(members: &mut [T], order: &[u8]) {
        let mut placed = [false; 256];
        for start in 0..members.len() {
            if placed[start] {
                continue;
            }
            // Along the cycle through `start`: place `i` takes what is at `order[i]`.
            let mut i = start;
            loop {
                placed[i] = true;
                let from = usize::from(order[i]);
                if from == start {
                    break;
                }
                members.swap(i, from);
                i = from;
            }
        }
    }
}

/// A value parsed by [`from_slice`].
struct Built(Value);

impl<'de> Deserialize<'de> for Built {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Build).map(Built)
    }
}

struct Build;

impl<'de> Visitor<'de> for Build {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(Build)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Built(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members: Vec<(String, Value)> =
            Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some((k, Built(v))) = map.next_entry::<String, Built>()? {
            members.push((k, v));
        }
        Ok(Value::Object(
            members.into_iter().collect::<Map<String, Value>>(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same(text: &str) {
        let theirs = serde_json::from_str::<Value>(text);
        let ours = from_slice(text.as_bytes());
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{text}"),
            _ => panic!("{text}: ours {ours:?}, serde_json {theirs:?}"),
        }
    }

    #[test]
    fn parses_as_serde_json_does() {
        for text in [
            r#"{"id":7,"username":"a@b.c","email":null,"status":"active","n":-3,"f":1.5e3,"big":18446744073709551615,"t":true,"nested":{"z":1,"a":[1,{"b":2}]},"metadata":{}}"#,
            r#"{"k":1,"k":2,"a":0,"k":3}"#,
            r#"  [1, "two", null, false, {"x": []}]  "#,
            r#""\u00e9\n\"""#,
            "1e400",
            "-0",
            "{}",
            "[]",
            "",
            "{",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            "[1,]",
            "nul",
            r#"{"a":1} x"#,
            "\"\\ud800\"",
            "1.7976931348623157e308",
            "-9223372036854775808",
            "18446744073709551616",
        ] {
            same(text);
        }
        // serde_json's private raw-value token is an ordinary member here.
        let raw = r#"{"$serde_json::private::RawValue":"[1,2]"}"#;
        assert_eq!(
            from_slice(raw.as_bytes()).unwrap(),
            serde_json::json!({"$serde_json::private::RawValue": "[1,2]"})
        );
        // serde_json's depth limit holds.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        same(&deep);
        assert!(from_slice(deep.as_bytes()).is_err());
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(from_slice(ok.as_bytes()).is_ok());
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| Value::Number(i.into())),
            any::<u64>().prop_map(|i| Value::Number(i.into())),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec(("[a-e]{0,3}", inner), 0..10)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// What the plain reader gives, checked against serde_json: where it reads a document,
    /// serde_json reads the same value from it.
    fn plain_agrees(text: &[u8]) -> Option<Value> {
        let plain = plain::parse(text);
        if let Some(v) = &plain {
            let theirs = serde_json::from_slice::<Value>(text);
            assert_eq!(
                theirs.as_ref().ok(),
                Some(v),
                "{:?}: serde_json {theirs:?}",
                String::from_utf8_lossy(text)
            );
        }
        plain
    }

    #[test]
    fn the_documents_seen_most_take_the_plain_reader() {
        let record = r#"{"id":1,"username":"u-g-1@example.com","email":"u-g-1@example.com","first_name":"G","last_name":"F","display_name":"U 1","initials":null,"job_title":"Engineer","phone":null,"office_id":null,"manager_id":-12,"metadata":{},"folders":[],"active_sessions":1,"created_at":"2026-12-04T11:33:33.652Z","updated_at":"2026-12-04T11:33:33.652Z"}"#;
        let entra = r#"{
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "externalId": "e-1", "userName": "Adele@contoso.com", "active": true,
            "emails": [ { "primary": true, "type": "work", "value": "Adele@contoso.com" } ],
            "name": {"familyName": "Vance", "givenName": "Adélè"}
        }"#;
        let dup = r#"{"b":1,"a":2,"b":3,"a":[],"c":{"z":0,"y":1,"z":2}}"#;
        let odd = "{\"del\":\"\u{7f}\u{80}\u{9f}\",\"max\":999999999999999999,\"min\":-999999999999999999}";
        for text in [record, entra, dup, odd, "[]", "{}", " 0 ", "-5", "\"x\""] {
            assert!(plain_agrees(text.as_bytes()).is_some(), "{text}");
        }
        // serde_json's private raw-value member is an ordinary member on both paths here.
        let raw = r#"{"$serde_json::private::RawValue":"[1,2]","a":{"$serde_json::private::RawValue":1}}"#;
        assert_eq!(
            plain::parse(raw.as_bytes()),
            Some(serde_json::from_slice::<Built>(raw.as_bytes()).unwrap().0)
        );
        // Left to serde_json: escapes, control characters, fractions, exponents, -0, long
        // integers, leading zeros, deep nesting, and whatever is no JSON.
        let deep = format!("{}{}", "[".repeat(70), "]".repeat(70));
        for text in [
            r#""a\nb""#,
            "\"a\tb\"",
            "1.5",
            "1e3",
            "-0",
            "1234567890123456789",
            "01",
            deep.as_str(),
            "[1,]",
            r#"{"a":1,}"#,
            "tru",
            "[1] 2",
            "",
            "-",
            "-1234567890123456789",
            "-01",
            "- 1",
            "\u{c}1",
            "\u{a0}1",
            "\u{feff}{}",
        ] {
            assert!(plain_agrees(text.as_bytes()).is_none(), "{text}");
            same(text);
        }
        assert!(plain_agrees(b"\"\xff\"").is_none());
    }

    /// Documents of what the plain reader takes: integers, strings without escapes.
    fn plain_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-999_999_999_999_999_999i64..=999_999_999_999_999_999)
                .prop_filter("not -0", |i| *i != 0)
                .prop_map(|i| Value::Number(i.into())),
            (0u64..=999_999_999_999_999_999).prop_map(|i| Value::Number(i.into())),
            "([^\"\\\\\\p{Cc}]|[\\x7f\\u{80}-\\u{9f}]){0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec(("[a-e]{0,3}", inner), 0..10)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        let every_ascii: String = (0u8..0x80).map(char::from).collect();
        for v in [
            serde_json::json!(null),
            serde_json::json!([
                true,
                false,
                0,
                -1,
                u64::MAX,
                i64::MIN,
                1.5,
                -0.0,
                1e300,
                0.1
            ]),
            serde_json::json!({"": "", "a\"b": "c\\d", "ctl": "\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}"}),
            serde_json::json!({"s": every_ascii, "é": "ünï €𝄞", "nested": {"a": [[], {}, [{}]]}}),
            serde_json::json!("exactly8"),
            serde_json::json!("seventeen chars!\""),
        ] {
            assert_eq!(
                String::from_utf8(to_vec(&v)).unwrap(),
                serde_json::to_string(&v).unwrap()
            );
        }
    }

    proptest! {
        #[test]
        fn any_value_is_written_as_serde_json_writes_it(
            v in json(),
            text in any::<String>(),
            key in "[\\x00-\\x7f]{0,20}",
        ) {
            prop_assert_eq!(to_vec(&v), serde_json::to_vec(&v).unwrap());
            let odd = serde_json::json!({ key: [text, v] });
            prop_assert_eq!(to_vec(&odd), serde_json::to_vec(&odd).unwrap());
        }

        #[test]
        fn a_string_ends_where_a_byte_by_byte_look_says(
            bytes in prop::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\\'), 0u8..0x20, 0x20u8..=0xff, Just(0x7f), Just(0xa2)],
                0..40,
            ),
            lead in 0usize..30,
        ) {
            let mut text = vec![b'a'; lead];
            text.extend(bytes);
            let naive = text.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            prop_assert_eq!(special_byte_at(&text), naive);
        }

        #[test]
        fn the_plain_reader_reads_what_serde_json_reads(v in plain_json(), big in 0usize..60) {
            let compact = v.to_string();
            prop_assert_eq!(plain_agrees(compact.as_bytes()), Some(v.clone()));
            let pretty = serde_json::to_string_pretty(&v).unwrap();
            prop_assert_eq!(plain_agrees(pretty.as_bytes()), Some(v.clone()));
            // An object of many members, some given twice, in reverse order.
            for forward in [false, true] {
                let mut members: Vec<String> =
                    (0..big).map(|i| format!("\"k{}\":{i}", i % 37)).collect();
                if !forward {
                    members.reverse();
                }
                let text = format!("{{{}}}", members.join(","));
                prop_assert!(plain_agrees(text.as_bytes()).is_some());
                same(&text);
            }
        }

        #[test]
        fn an_edited_document_is_read_as_serde_json_reads_it_or_left_to_it(
            v in plain_json(),
            at in any::<prop::sample::Index>(),
            edit in 0u8..3,
            byte in prop::sample::select(b"{}[]:,\" \\-0123456789.eEtrufalsn\x01\xc3".to_vec()),
        ) {
            let mut text = v.to_string().into_bytes();
            let i = at.index(text.len() + 1);
            match edit {
                0 => text.insert(i, byte),
                1 if i < text.len() => { text.remove(i); }
                _ if i < text.len() => text[i] = byte,
                _ => text.push(byte),
            }
            plain_agrees(&text);
            if let Ok(s) = std::str::from_utf8(&text) {
                same(s);
            }
        }
    }

    proptest! {
        /// `sort_members` is a stable sort by key: for objects of any size, the first time
        /// a key sequence is seen and again (its order then kept), and after objects of
        /// the same size but other keys.
        #[test]
        fn members_sort_as_a_stable_sort_does(
            objects in prop::collection::vec(
                prop::collection::vec("[a-d]{0,2}", 0..300),
                1..6,
            ),
        ) {
            for keys in objects.iter().chain(objects.iter()) {
                let mut members: Vec<(String, usize)> =
                    keys.iter().cloned().zip(0..).collect();
                let mut expected = members.clone();
                expected.sort_by(|a, b| a.0.cmp(&b.0));
                plain::sort_members(&mut members);
                prop_assert_eq!(&members, &expected);
                // The same keys in another order, same size.
                let mut turned: Vec<(String, usize)> =
                    keys.iter().rev().cloned().zip(0..).collect();
                let mut expected = turned.clone();
                expected.sort_by(|a, b| a.0.cmp(&b.0));
                plain::sort_members(&mut turned);
                prop_assert_eq!(&turned, &expected);
            }
        }
    }

    proptest! {
        #[test]
        fn any_document_parses_to_the_same_value(v in json(), dup in "[a-e]{1,2}") {
            let text = v.to_string();
            same(&text);
            // A member given twice in an object's text: the last one wins.
            let twice = format!("{{\"{dup}\":1,{}\"{dup}\":2}}", match &v {
                Value::Object(m) if !m.is_empty() => {
                    let t = v.to_string();
                    format!("{},", &t[1..t.len() - 1])
                }
                _ => String::new(),
            });
            same(&twice);
        }
    }
}
