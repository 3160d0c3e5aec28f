//! Recursive-descent parser for filters and PATCH paths.
//!
//! The scanner works on bytes and only ever stops on ASCII bytes or after whole characters,
//! so every offset it slices at is a character boundary and no input can make it panic.
//! Offsets in error details are byte offsets into the original text.

use super::{CompValue, CompareOp, Filter, PatchPath};
use crate::scim::error::{ScimError, ScimResult};
use crate::scim::path::{AttrPath, is_attr_name};
use crate::scim::schema::SchemaRegistry;

/// Longest filter or PATCH path accepted, in bytes; longer input is refused before parsing.
pub const MAX_FILTER_LEN: usize = 8192;

/// Deepest nesting of parentheses and value-path brackets accepted.
pub const MAX_FILTER_DEPTH: usize = 50;

/// Parses `?filter=` text (RFC 7644 §3.4.2.2) when a list or search request arrives.
///
/// Keywords and operators are case-insensitive; `not` > `and` > `or`, both left-associative.
/// With `registry`, schema-qualified names split at a registered URN (so open extensions like
/// `…:extension:2.0:Metadata:costCenter` work); without it, at the last colon. Clients'
/// `emails[type eq "work"].value eq "x"` becomes the value path
/// `emails[type eq "work" and value eq "x"]`. Every failure is a 400 `invalidFilter` whose
/// detail names the byte offset and what was expected there.
pub fn parse_filter(input: &str, registry: Option<&SchemaRegistry>) -> ScimResult<Filter> {
    let mut p = Parser::new(input, registry, ErrorKind::Filter)?;
    let filter = p.parse_or(false)?;
    p.skip_ws();
    if p.pos < p.bytes.len() {
        return Err(p.error(p.pos, "expected 'and', 'or' or the end of the filter"));
    }
    Ok(filter)
}

/// PATCH `path` grammar: attrPath / valuePath [subAttr] e.g. `emails[type eq "work"].value`,
/// `members[value eq "2819c223"]`, `urn:…:enterprise:2.0:User:manager`, `name.givenName`.
/// Errors are `invalidPath`.
///
/// Runs for each PATCH operation that carries a `path`; schema-qualified names are split as
/// in [`parse_filter`].
pub fn parse_patch_path(input: &str, registry: Option<&SchemaRegistry>) -> ScimResult<PatchPath> {
    let mut p = Parser::new(input, registry, ErrorKind::Path)?;
    p.skip_ws();
    let start = p.pos;
    let token = p.path_token();
    if token.is_empty() {
        return Err(p.error(start, "expected an attribute path"));
    }
    let attr = p.attr_path(token, start)?;
    let mut path = PatchPath {
        attr,
        filter: None,
        sub: None,
    };
    if p.peek() == Some(b'[') {
        let (filter, sub) = p.value_filter(&path.attr, start)?;
        path.filter = Some(filter);
        path.sub = sub;
    }
    p.skip_ws();
    if p.pos < p.bytes.len() {
        let what = if path.filter.is_some() {
            "expected '.subAttribute' or the end of the path"
        } else {
            "expected '[' or the end of the path"
        };
        return Err(p.error(p.pos, what));
    }
    Ok(path)
}

#[derive(Clone, Copy, PartialEq)]
enum ErrorKind {
    Filter,
    Path,
}

struct Parser<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    registry: Option<&'a SchemaRegistry>,
    kind: ErrorKind,
}

/// Bytes that may appear in an attribute path token, URN prefix included
/// (`urn:ietf:params:scim:schemas:core:2.0:User:name.givenName`, `$ref`).
fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'$')
}

impl<'a> Parser<'a> {
    fn new(
        src: &'a str,
        registry: Option<&'a SchemaRegistry>,
        kind: ErrorKind,
    ) -> ScimResult<Self> {
        let p = Parser {
            src,
            bytes: src.as_bytes(),
            pos: 0,
            depth: 0,
            registry,
            kind,
        };
        if src.len() > MAX_FILTER_LEN {
            return Err(p.error(
                MAX_FILTER_LEN,
                &format!(
                    "input is {} bytes long, the limit is {MAX_FILTER_LEN}",
                    src.len()
                ),
            ));
        }
        Ok(p)
    }

    fn error(&self, at: usize, what: &str) -> ScimError {
        let detail = format!("at offset {at}: {what}");
        match self.kind {
            ErrorKind::Filter => ScimError::invalid_filter(detail),
            ErrorKind::Path => ScimError::invalid_path(detail),
        }
    }

    /// What sits at `at`, for error messages: the character, or "the end".
    fn found(&self, at: usize) -> String {
        match self.src.get(at..).and_then(|s| s.chars().next()) {
            Some(c) => format!("found '{}'", c.escape_debug()),
            None => "found the end of the input".to_string(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.pos += 1;
        }
        // only ASCII bytes satisfy the predicates used here, so both ends are boundaries
        self.src.get(start..self.pos).unwrap_or_default()
    }

    fn path_token(&mut self) -> &'a str {
        self.take_while(is_path_byte)
    }

    /// Consumes `word` (ignoring case) when it stands at the cursor as a whole word.
    fn keyword(&mut self, word: &str) -> bool {
        let end = self.pos + word.len();
        let matches = self
            .bytes
            .get(self.pos..end)
            .is_some_and(|b| b.eq_ignore_ascii_case(word.as_bytes()))
            && !self.bytes.get(end).copied().is_some_and(is_path_byte);
        if matches {
            self.pos = end;
        }
        matches
    }

    fn enter(&mut self, at: usize) -> ScimResult<()> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(self.error(
                at,
                &format!("nesting is deeper than {MAX_FILTER_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    /// `or`-level expression; `in_brackets` while inside a value path's `[…]`.
    fn parse_or(&mut self, in_brackets: bool) -> ScimResult<Filter> {
        let mut left = self.parse_and(in_brackets)?;
        loop {
            self.skip_ws();
            if !self.keyword("or") {
                return Ok(left);
            }
            let right = self.parse_and(in_brackets)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
    }

    fn parse_and(&mut self, in_brackets: bool) -> ScimResult<Filter> {
        let mut left = self.parse_unary(in_brackets)?;
        loop {
            self.skip_ws();
            if !self.keyword("and") {
                return Ok(left);
            }
            let right = self.parse_unary(in_brackets)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
    }

    fn parse_unary(&mut self, in_brackets: bool) -> ScimResult<Filter> {
        self.skip_ws();
        if self.peek() == Some(b'(') {
            return self.parse_group(in_brackets);
        }
        let save = self.pos;
        if self.keyword("not") {
            self.skip_ws();
            if self.peek() == Some(b'(') {
                return Ok(Filter::Not(Box::new(self.parse_group(in_brackets)?)));
            }
            // an attribute may be called `not` (`not pr`)
            self.pos = save;
        }
        self.attr_expr(in_brackets)
    }

    fn parse_group(&mut self, in_brackets: bool) -> ScimResult<Filter> {
        let open = self.pos;
        self.enter(open)?;
        self.pos += 1;
        let inner = self.parse_or(in_brackets)?;
        self.skip_ws();
        if self.peek() != Some(b')') {
            return Err(self.error(
                self.pos,
                &format!(
                    "expected ')' to close the '(' at offset {open}, {}",
                    self.found(self.pos)
                ),
            ));
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(inner)
    }

    /// `attrPath pr`, `attrPath op value`, or a value path.
    fn attr_expr(&mut self, in_brackets: bool) -> ScimResult<Filter> {
        let start = self.pos;
        let token = self.path_token();
        if token.is_empty() {
            let want = if in_brackets {
                "expected a sub-attribute name, 'not' or '('"
            } else {
                "expected an attribute path, 'not' or '('"
            };
            return Err(self.error(start, &format!("{want}, {}", self.found(start))));
        }
        let path = if in_brackets {
            if !is_attr_name(token) {
                return Err(self.error(
                    start,
                    &format!(
                        "expected a sub-attribute name inside '[…]', found '{token}' \
                         (paths there are relative to the attribute before '[')"
                    ),
                ));
            }
            AttrPath::new(token)
        } else {
            self.attr_path(token, start)?
        };
        if self.peek() == Some(b'[') {
            if in_brackets {
                return Err(self.error(self.pos, "value paths cannot be nested"));
            }
            return self.value_path_expr(path, start);
        }
        self.attr_op(path, token)
    }

    /// Converts a scanned path token, using the registry's URN list when there is one.
    fn attr_path(&self, token: &str, start: usize) -> ScimResult<AttrPath> {
        let parsed = match self.registry {
            Some(reg) => reg.parse_path(token),
            None => AttrPath::parse(token),
        };
        parsed.map_err(|e| {
            self.error(
                start,
                &format!(
                    "expected an attribute path, '{token}' is not one: {}",
                    e.detail
                ),
            )
        })
    }

    /// The operator and operand after a path: `pr`, or `op value`.
    fn attr_op(&mut self, path: AttrPath, token: &str) -> ScimResult<Filter> {
        self.skip_ws();
        let op_at = self.pos;
        let word = self.take_while(|b| b.is_ascii_alphabetic());
        if word.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::from_keyword(word) else {
            return Err(self.error(
                op_at,
                &format!(
                    "expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after \
                     '{token}', {}",
                    self.found(op_at)
                ),
            ));
        };
        self.skip_ws();
        let value = self.comp_value(op)?;
        Ok(Filter::Compare { path, op, value })
    }

    /// `attr[filter]` with the cursor on `[`, optionally followed by `.sub op value`.
    fn value_path_expr(&mut self, attr: AttrPath, start: usize) -> ScimResult<Filter> {
        let (filter, sub) = self.value_filter(&attr, start)?;
        let Some(sub) = sub else {
            return Ok(Filter::ValuePath {
                attr,
                filter: Box::new(filter),
            });
        };
        // `emails[type eq "work"].value eq "x"`: the comparison joins the element filter
        let cmp = self.attr_op(AttrPath::new(sub.as_str()), &sub)?;
        Ok(Filter::ValuePath {
            attr,
            filter: Box::new(Filter::And(Box::new(filter), Box::new(cmp))),
        })
    }

    /// `[filter]` and an optional `.subAttr`, with the cursor on `[`.
    fn value_filter(
        &mut self,
        attr: &AttrPath,
        start: usize,
    ) -> ScimResult<(Filter, Option<String>)> {
        if attr.sub.is_some() {
            return Err(self.error(
                start,
                &format!(
                    "a value filter '[…]' must follow an attribute, not the sub-attribute '{attr}'"
                ),
            ));
        }
        let open = self.pos;
        self.enter(open)?;
        self.pos += 1;
        let filter = self.parse_or(true)?;
        self.skip_ws();
        if self.peek() != Some(b']') {
            return Err(self.error(
                self.pos,
                &format!(
                    "expected ']' to close the '[' at offset {open}, {}",
                    self.found(self.pos)
                ),
            ));
        }
        self.pos += 1;
        self.depth -= 1;
        if self.peek() != Some(b'.') {
            return Ok((filter, None));
        }
        self.pos += 1;
        let sub_at = self.pos;
        let sub = self.path_token();
        if !is_attr_name(sub) {
            return Err(self.error(
                sub_at,
                &format!(
                    "expected a sub-attribute name after '].', {}",
                    self.found(sub_at)
                ),
            ));
        }
        Ok((filter, Some(sub.to_string())))
    }

    fn comp_value(&mut self, op: CompareOp) -> ScimResult<CompValue> {
        let at = self.pos;
        match self.peek() {
            Some(b'"') => self.json_string().map(CompValue::Str),
            Some(b'-' | b'0'..=b'9') => self.json_number().map(CompValue::Num),
            Some(b) if b.is_ascii_alphabetic() => {
                let word = self.take_while(|b| b.is_ascii_alphanumeric());
                if word.eq_ignore_ascii_case("true") {
                    Ok(CompValue::Bool(true))
                } else if word.eq_ignore_ascii_case("false") {
                    Ok(CompValue::Bool(false))
                } else if word.eq_ignore_ascii_case("null") {
                    Ok(CompValue::Null)
                } else {
                    Err(self.error(
                        at,
                        &format!(
                            "expected a comparison value after '{op}' (a JSON string, \
                             number, true, false or null), found '{word}'"
                        ),
                    ))
                }
            }
            _ => Err(self.error(
                at,
                &format!(
                    "expected a comparison value after '{op}', {}",
                    self.found(at)
                ),
            )),
        }
    }

    /// A JSON string (RFC 8259 §7) with the cursor on its opening quote.
    fn json_string(&mut self) -> ScimResult<String> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        let mut plain_from = self.pos;
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error(
                    self.pos,
                    &format!("expected '\"' to close the string opened at offset {open}"),
                ));
            };
            match b {
                b'"' => {
                    out.push_str(self.src.get(plain_from..self.pos).unwrap_or_default());
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    out.push_str(self.src.get(plain_from..self.pos).unwrap_or_default());
                    out.push(self.escape()?);
                    plain_from = self.pos;
                }
                0x00..=0x1f => {
                    return Err(self.error(
                        self.pos,
                        "control characters in a string must be escaped (e.g. \\n, \\u0001)",
                    ));
                }
                // continuation bytes of multi-byte characters are never '"' or '\\'
                _ => self.pos += 1,
            }
        }
    }

    /// One escape sequence, cursor on the backslash; returns the character it stands for.
    fn escape(&mut self) -> ScimResult<char> {
        let at = self.pos;
        let c = match self.bytes.get(at + 1).copied() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => return self.unicode_escape(),
            _ => {
                return Err(self.error(
                    at,
                    "invalid escape: expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX",
                ));
            }
        };
        self.pos += 2;
        Ok(c)
    }

    /// `\uXXXX`, or a surrogate pair `\uD83D\uDE00`, cursor on the backslash.
    fn unicode_escape(&mut self) -> ScimResult<char> {
        let at = self.pos;
        let high = self.hex4(at + 2)?;
        self.pos = at + 6;
        if !(0xD800..0xE000).contains(&high) {
            return char::from_u32(high).ok_or_else(|| self.error(at, "invalid \\u escape"));
        }
        if high >= 0xDC00 {
            return Err(self.error(at, "unpaired low surrogate in \\u escape"));
        }
        let pair_at = self.pos;
        if self.bytes.get(pair_at..pair_at + 2) != Some(b"\\u".as_slice()) {
            return Err(self.error(
                pair_at,
                "expected a '\\u' low surrogate after the high surrogate",
            ));
        }
        let low = self.hex4(pair_at + 2)?;
        if !(0xDC00..0xE000).contains(&low) {
            return Err(self.error(pair_at, "expected a low surrogate (\\uDC00-\\uDFFF)"));
        }
        self.pos = pair_at + 6;
        char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
            .ok_or_else(|| self.error(at, "invalid surrogate pair"))
    }

    fn hex4(&self, at: usize) -> ScimResult<u32> {
        let digits = self
            .bytes
            .get(at..at + 4)
            .filter(|d| d.iter().all(u8::is_ascii_hexdigit))
            .ok_or_else(|| self.error(at, "expected four hex digits after '\\u'"))?;
        Ok(digits.iter().fold(0, |acc, d| {
            acc * 16 + (*d as char).to_digit(16).unwrap_or(0)
        }))
    }

    /// A JSON number (RFC 8259 §6), cursor on its first byte.
    fn json_number(&mut self) -> ScimResult<serde_json::Number> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.take_while(|b| b.is_ascii_digit());
            }
            _ => return Err(self.error(self.pos, "expected a digit in the number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.take_while(|b| b.is_ascii_digit()).is_empty() {
                return Err(self.error(self.pos, "expected a digit after the decimal point"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.take_while(|b| b.is_ascii_digit()).is_empty() {
                return Err(self.error(self.pos, "expected a digit in the exponent"));
            }
        }
        if self.peek().is_some_and(is_path_byte) {
            return Err(self.error(
                self.pos,
                &format!("expected the number to end, {}", self.found(self.pos)),
            ));
        }
        let text = self.src.get(start..self.pos).unwrap_or_default();
        number_from_json(text)
            .ok_or_else(|| self.error(start, &format!("number '{text}' is out of range")))
    }
}

/// Converts validated JSON number text: integers stay exact when they fit in i64/u64, the
/// rest become the nearest f64. Uses the standard library's correctly rounded parser so a
/// printed float always reads back as the same value.
fn number_from_json(text: &str) -> Option<serde_json::Number> {
    if !text.contains(['.', 'e', 'E']) {
        if let Ok(i) = text.parse::<i64>() {
            return Some(i.into());
        }
        if let Ok(u) = text.parse::<u64>() {
            return Some(u.into());
        }
    }
    text.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
}
