//! A mapping's answer read where it lies: the compiled run's own value, or the JSON rhai gave
//! back. The response path writes a resource straight from it ([`crate::scim::response::Doc`])
//! instead of first building a `serde_json::Value` of it and dropping that once written (a
//! GET's answer into JSON and its drop: ~9k instructions, callgrind).

use super::value::{Text, Val, float_json};
use crate::json::{write_array, write_object, write_str, write_value};
use crate::scim::response::Doc;
use serde_json::Value;

/// A mapping's answer, or a value inside it.
#[derive(Clone, Copy, Debug)]
pub struct Answer<'v, 'a>(Node<'v, 'a>);

#[derive(Clone, Copy, Debug)]
enum Node<'v, 'a> {
    /// The compiled run's value.
    Val(&'v Val<'a>),
    /// JSON of the call's arguments inside the compiled run's value: as the round trip
    /// through rhai would give it back (numbers beyond i64 as floats).
    Copied(&'v Value),
    /// JSON as it is (rhai's answer).
    Json(&'v Value),
}

impl<'v, 'a> Answer<'v, 'a> {
    /// rhai's answer (or any JSON).
    pub fn json(v: &'v Value) -> Self {
        Answer(Node::Json(v))
    }

    pub(super) fn of(v: &'v Val<'a>) -> Self {
        Answer(match v {
            Val::Json(j) => Node::Copied(j),
            other => Node::Val(other),
        })
    }

    /// The answer as JSON, the `Value` the call would have returned.
    pub fn to_json(self) -> Value {
        match self.0 {
            Node::Val(v) => v.to_json(),
            Node::Copied(v) => super::value::json_copy(v),
            Node::Json(v) => v.clone(),
        }
    }
}

/// An object's members (see [`Doc::members`]).
pub struct Members<'v, 'a>(Iter<'v, 'a>);

enum Iter<'v, 'a> {
    Val(std::slice::Iter<'v, (Text<'a>, Val<'a>)>),
    Copied(serde_json::map::Iter<'v>),
    Json(serde_json::map::Iter<'v>),
}

impl<'v, 'a> Iterator for Members<'v, 'a> {
    type Item = (&'v str, Answer<'v, 'a>);
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Iter::Val(it) => it.next().map(|(k, v)| (k.as_str(), Answer::of(v))),
            Iter::Copied(it) => it
                .next()
                .map(|(k, v)| (k.as_str(), Answer(Node::Copied(v)))),
            Iter::Json(it) => it.next().map(|(k, v)| (k.as_str(), Answer(Node::Json(v)))),
        }
    }
}

impl<'v, 'a: 'v> Doc<'v> for Answer<'v, 'a> {
    type Members = Members<'v, 'a>;

    fn members(self) -> Option<Members<'v, 'a>> {
        match self.0 {
            Node::Val(Val::Map(m)) => Some(Members(Iter::Val(m.entries().iter()))),
            Node::Copied(Value::Object(o)) => Some(Members(Iter::Copied(o.iter()))),
            Node::Json(Value::Object(o)) => Some(Members(Iter::Json(o.iter()))),
            _ => None,
        }
    }

    fn get(self, key: &str) -> Option<Self> {
        match self.0 {
            Node::Val(Val::Map(m)) => m.get(key).map(Answer::of),
            Node::Copied(Value::Object(o)) => o.get(key).map(|v| Answer(Node::Copied(v))),
            Node::Json(Value::Object(o)) => o.get(key).map(|v| Answer(Node::Json(v))),
            _ => None,
        }
    }

    fn as_str(self) -> Option<&'v str> {
        match self.0 {
            Node::Val(Val::Str(t)) => Some(t.as_str()),
            Node::Copied(v) | Node::Json(v) => v.as_str(),
            Node::Val(_) => None,
        }
    }

    fn as_i64(self) -> Option<i64> {
        match self.0 {
            Node::Val(Val::Int(i)) => Some(*i),
            Node::Copied(v) | Node::Json(v) => v.as_i64(),
            Node::Val(_) => None,
        }
    }

    fn to_json(self) -> Value {
        Answer::to_json(self)
    }

    /// What `write_value` writes of [`Answer::to_json`].
    fn write(self, out: &mut Vec<u8>) {
        match self.0 {
            Node::Json(v) => write_value(out, v),
            Node::Copied(v) => write_copied(out, v),
            Node::Val(v) => write_val(out, v),
        }
    }
}

fn write_val(out: &mut Vec<u8>, v: &Val<'_>) {
    match v {
        Val::Unit => out.extend_from_slice(b"null"),
        Val::Bool(true) => out.extend_from_slice(b"true"),
        Val::Bool(false) => out.extend_from_slice(b"false"),
        Val::Int(i) => write_value(out, &Value::from(*i)),
        Val::Float(f) => write_value(out, &float_json(*f)),
        Val::Str(t) => write_str(out, t.as_str()),
        Val::Json(j) => write_copied(out, j),
        Val::Array(items) => write_array(out, items.iter(), write_val),
        Val::Map(map) => write_object(
            out,
            map.entries().iter().map(|(k, v)| (k.as_str(), v)),
            write_val,
        ),
    }
}

/// `write_value` of `json_copy(v)`.
fn write_copied(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Number(n) if n.as_i64().is_none() => {
            write_value(out, &float_json(n.as_f64().unwrap_or(f64::NAN)));
        }
        Value::Array(items) => write_array(out, items, write_copied),
        Value::Object(obj) => {
            write_object(out, obj.iter().map(|(k, v)| (k.as_str(), v)), write_copied)
        }
        other => write_value(out, other),
    }
}
