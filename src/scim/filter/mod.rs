//! The SCIM filter language (RFC 7644 §3.4.2.2) and the PATCH `path` grammar (§3.5.2).
//!
//! [`parse_filter`] turns `?filter=` text into a [`Filter`] tree, [`validate_filter`] checks
//! it against the resource type's schemas, [`evaluate`] runs it against one resource's JSON,
//! and [`matches_element`] runs a value path's inner filter against one element of a
//! multi-valued attribute (used by the PATCH engine). Every tree prints back as canonical
//! filter text through `Display`, and parsing that text yields the same tree.

mod eval;
mod parse;

pub use eval::{evaluate, matches_element, read_names, validate_filter, view};
pub use parse::{MAX_FILTER_DEPTH, MAX_FILTER_LEN, parse_filter, parse_patch_path};

use super::path::AttrPath;
use std::fmt;

/// A comparison operator of an attribute expression (`userName eq "x"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// Equal.
    Eq,
    /// Not equal: no value of the attribute equals the operand (true when absent).
    Ne,
    /// The string value contains the operand.
    Co,
    /// The string value starts with the operand.
    Sw,
    /// The string value ends with the operand.
    Ew,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
}

impl CompareOp {
    /// The operator keyword in its canonical (lower-case) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// Every comparison operator, in RFC 7644 order.
    pub const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    /// The operator named by `word` ignoring case; `None` for anything else (including `pr`).
    pub fn from_keyword(word: &str) -> Option<CompareOp> {
        Self::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(word))
    }

    /// True for the ordering operators (gt, ge, lt, le), which need an ordered attribute type.
    pub fn is_ordering(self) -> bool {
        matches!(
            self,
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
        )
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The right-hand operand of a comparison: a JSON string, number, boolean or `null`.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    /// A JSON string, unescaped.
    Str(String),
    /// A JSON number.
    Num(serde_json::Number),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Str(s) => write_json_string(f, s),
            CompValue::Num(n) => write!(f, "{n}"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Null => f.write_str("null"),
        }
    }
}

/// Writes `s` as a JSON string literal, escaping only what JSON requires.
fn write_json_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    use fmt::Write;
    f.write_char('"')?;
    let mut plain_from = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            c if (c as u32) < 0x20 => None,
            _ => continue,
        };
        f.write_str(s.get(plain_from..i).unwrap_or_default())?;
        match esc {
            Some(e) => f.write_str(e)?,
            None => write!(f, "\\u{:04x}", c as u32)?,
        }
        plain_from = i + c.len_utf8();
    }
    f.write_str(s.get(plain_from..).unwrap_or_default())?;
    f.write_char('"')
}

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `path op value`.
    Compare {
        /// The attribute compared.
        path: AttrPath,
        /// The operator.
        op: CompareOp,
        /// The operand.
        value: CompValue,
    },
    /// `path pr`: the attribute has a non-empty value.
    Present(AttrPath),
    /// Both operands match.
    And(Box<Filter>, Box<Filter>),
    /// Either operand matches.
    Or(Box<Filter>, Box<Filter>),
    /// The operand does not match.
    Not(Box<Filter>),
    /// `emails[type eq "work" and value co "@x"]`; inner paths are relative to `attr`
    /// (AttrPath::new("type")), `attr` has no sub.
    ValuePath {
        /// The multi-valued (or complex) attribute whose elements are tested.
        attr: AttrPath,
        /// The filter one element must match.
        filter: Box<Filter>,
    },
}

impl Filter {
    /// `Some((path, value))` when the whole filter is `attr eq "string"`: the backend layer
    /// pushes such clauses down to a legacy query parameter.
    pub fn simple_eq(&self) -> Option<(&AttrPath, &str)> {
        match self {
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value: CompValue::Str(s),
            } => Some((path, s.as_str())),
            _ => None,
        }
    }

    /// The top-level `and` operands (the filter itself if it is not an `and`).
    pub fn conjuncts(&self) -> Vec<&Filter> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(f) = stack.pop() {
            match f {
                Filter::And(l, r) => {
                    stack.push(r);
                    stack.push(l);
                }
                other => out.push(other),
            }
        }
        out
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Filter::Present(path) => write!(f, "{path} pr"),
            // `and` binds tighter than `or` and both associate to the left, so parentheses
            // are needed exactly where the tree deviates from that reading.
            Filter::And(l, r) => {
                write_operand(f, l, matches!(**l, Filter::Or(..)))?;
                f.write_str(" and ")?;
                write_operand(f, r, matches!(**r, Filter::Or(..) | Filter::And(..)))
            }
            Filter::Or(l, r) => {
                write_operand(f, l, false)?;
                f.write_str(" or ")?;
                write_operand(f, r, matches!(**r, Filter::Or(..)))
            }
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::ValuePath { attr, filter } => write!(f, "{attr}[{filter}]"),
        }
    }
}

fn write_operand(f: &mut fmt::Formatter<'_>, x: &Filter, parens: bool) -> fmt::Result {
    if parens {
        write!(f, "({x})")
    } else {
        write!(f, "{x}")
    }
}

/// A parsed PATCH operation `path`: `name.givenName`, `emails[type eq "work"].value`,
/// `members[value eq "2819c223"]`, `urn:…:enterprise:2.0:User:manager`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute targeted; carries the sub-attribute when there is no value filter
    /// (`name.givenName`), never one when `filter` is set.
    pub attr: AttrPath,
    /// The value filter selecting elements of a multi-valued attribute, paths relative to it.
    pub filter: Option<Filter>,
    /// The sub-attribute of the selected elements (`value` in `emails[…].value`).
    pub sub: Option<String>,
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
