//! The values a compiled script works on: JSON read in place where it came from the call's
//! arguments, owned values where the script built them.
//!
//! Each operation here mirrors what rhai does for the same operands (rhai 1.27: `==` of two
//! values of different non-numeric types is `false`, a missing map key reads as `()`, …).
//! Where the answer is not certain (floats printed as text, arrays compared element by
//! element, anything involving a type rhai has and JSON has not) the operation returns
//! `None` and the call is handed to rhai, which then gives the answer or the error.

use serde_json::Value;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Text: borrowed from the arguments or the compiled program, or made by the script.
#[derive(Clone, Debug)]
pub(super) enum Text<'a> {
    Ref(&'a str),
    Own(Rc<str>),
}

impl Text<'_> {
    pub(super) fn as_str(&self) -> &str {
        match self {
            Text::Ref(s) => s,
            Text::Own(s) => s,
        }
    }

    pub(super) fn owned(s: String) -> Self {
        Text::Own(Rc::from(s))
    }
}

impl AsRef<str> for Text<'_> {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Text<'_> {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Text<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for Text<'_> {}
impl PartialOrd for Text<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Text<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

/// A JSON document's text read straight into a script's values ([`crate::json::plain`]'s
/// grammar, so only documents that reader takes): strings borrowed from the text, each
/// object a [`Map`] sorted by key with the last of a repeated key kept, as the
/// `serde_json::Value` of the same text holds it. A legacy record read this way costs no
/// string copies and no tree of maps, and the script reads it as it reads that `Value`:
/// `Val::from_json` of a `Value` object and a map of the same entries answer every
/// operation alike (the tests run the bundled mappings over both).
pub(super) struct FromText;

impl<'t> crate::json::plain::Build<'t> for FromText {
    type Out = Val<'t>;
    type Items = Vec<Val<'t>>;
    type Members = Vec<(Text<'t>, Val<'t>)>;
    fn null() -> Val<'t> {
        Val::Unit
    }
    fn bool(b: bool) -> Val<'t> {
        Val::Bool(b)
    }
    fn int(n: i64) -> Val<'t> {
        Val::Int(n)
    }
    fn string(s: &'t str) -> Val<'t> {
        Val::Str(Text::Ref(s))
    }
    fn items() -> Vec<Val<'t>> {
        Vec::new()
    }
    fn item(items: &mut Vec<Val<'t>>, v: Val<'t>) {
        items.push(v);
    }
    fn array(items: Vec<Val<'t>>) -> Val<'t> {
        Val::array(items)
    }
    fn members() -> Vec<(Text<'t>, Val<'t>)> {
        Vec::with_capacity(8)
    }
    fn member(members: &mut Vec<(Text<'t>, Val<'t>)>, key: &'t str, v: Val<'t>) {
        // In the document's order; sorted once, at the end (`Map::from_entries`).
        members.push((Text::Ref(key), v));
    }
    fn object(members: Vec<(Text<'t>, Val<'t>)>) -> Val<'t> {
        Val::map(Map::from_entries(members))
    }
}

/// Where in a map a property read of a script found its key last time ([`Map::get_hinted`]);
/// only a guess, checked each time, so any value is safe (threads share it).
#[derive(Debug, Default)]
pub(super) struct Hint(AtomicUsize);

/// rhai's map: ordered by key, as rhai's `BTreeMap` is (so `keys()` comes out in the same
/// order and so does the JSON), kept as a vector sorted by key. A mapping's maps hold a few
/// to a dozen entries and are built one property after another: a search of a sorted
/// vector and a short move cost a third of a `BTreeMap` insert (its node search and node
/// allocation), and reading them out into JSON is a walk of a slice (callgrind: the maps a
/// user's `from_backend` builds took 290 instructions an insert as `BTreeMap`s). A large
/// map built out of order costs a move of the entries after each insert; a run that takes
/// too long that way is left to rhai by the run's deadline like any other.
#[derive(Clone, Debug, Default)]
pub(super) struct Map<'a> {
    entries: Vec<(Text<'a>, Val<'a>)>,
}

impl<'a> Map<'a> {
    pub(super) fn new() -> Self {
        Map {
            entries: Vec::new(),
        }
    }

    /// A map of entries in any order: sorted by key (stable), and of equal keys the last
    /// kept, as `FromIterator` does it.
    fn from_entries(mut entries: Vec<(Text<'a>, Val<'a>)>) -> Self {
        crate::json::plain::sort_members(&mut entries);
        let mut kept = 0;
        for i in 0..entries.len() {
            if kept > 0 && entries[kept - 1].0 == entries[i].0 {
                entries.swap(kept - 1, i);
            } else {
                entries.swap(kept, i);
                kept += 1;
            }
        }
        entries.truncate(kept);
        Map { entries }
    }

    /// Where `key` is, or where it would go.
    fn find(&self, key: &str) -> Result<usize, usize> {
        // The order of `str`s; keys mostly differ in their first byte, which is compared
        // here before the rest is compared with `memcmp`.
        let key = key.as_bytes();
        self.entries.binary_search_by(|(k, _)| {
            let k = k.as_str().as_bytes();
            match (k.first(), key.first()) {
                (Some(a), Some(b)) if a != b => a.cmp(b),
                _ => k.cmp(key),
            }
        })
    }

    /// Sets `key` to `v`; the value it had.
    pub(super) fn insert(&mut self, key: Text<'a>, v: Val<'a>) -> Option<Val<'a>> {
        // Properties are often set in key order: the end first.
        if self
            .entries
            .last()
            .is_none_or(|(k, _)| k.as_str() < key.as_str())
        {
            self.entries.push((key, v));
            return None;
        }
        match self.find(key.as_str()) {
            Ok(at) => Some(std::mem::replace(&mut self.entries[at].1, v)),
            Err(at) => {
                self.entries.insert(at, (key, v));
                None
            }
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<&Val<'a>> {
        self.find(key).ok().map(|at| &self.entries[at].1)
    }

    /// [`Map::get`] looking first where `hint` says the key was last found: the records of
    /// one endpoint come with the same keys, so a property read of the script finds its key
    /// at the same place in each, and a binary search is made only where it is not there.
    pub(super) fn get_hinted(&self, key: &str, hint: &Hint) -> Option<&Val<'a>> {
        let at = hint.0.load(Ordering::Relaxed);
        if let Some((k, v)) = self.entries.get(at)
            && k.as_str() == key
        {
            return Some(v);
        }
        let at = self.find(key).ok()?;
        hint.0.store(at, Ordering::Relaxed);
        Some(&self.entries[at].1)
    }

    pub(super) fn get_mut(&mut self, key: &str) -> Option<&mut Val<'a>> {
        match self.find(key) {
            Ok(at) => Some(&mut self.entries[at].1),
            Err(_) => None,
        }
    }

    pub(super) fn remove(&mut self, key: &str) -> Option<Val<'a>> {
        match self.find(key) {
            Ok(at) => Some(self.entries.remove(at).1),
            Err(_) => None,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entries in key order.
    pub(super) fn entries(&self) -> &[(Text<'a>, Val<'a>)] {
        &self.entries
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&Text<'a>, &Val<'a>)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &Text<'a>> {
        self.entries.iter().map(|(k, _)| k)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Val<'a>> {
        self.entries.iter().map(|(_, v)| v)
    }
}

impl<'a> IntoIterator for Map<'a> {
    type Item = (Text<'a>, Val<'a>);
    type IntoIter = std::vec::IntoIter<(Text<'a>, Val<'a>)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a> FromIterator<(Text<'a>, Val<'a>)> for Map<'a> {
    /// As a `BTreeMap` is collected: sorted by key, the last of equal keys kept.
    fn from_iter<I: IntoIterator<Item = (Text<'a>, Val<'a>)>>(iter: I) -> Self {
        let mut entries: Vec<(Text<'a>, Val<'a>)> = iter.into_iter().collect();
        // Stable: of equal keys, the one given last stays last.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(Text<'a>, Val<'a>)> = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            match out.last_mut() {
                Some(last) if last.0 == k => *last = (k, v),
                _ => out.push((k, v)),
            }
        }
        Map { entries: out }
    }
}

/// A script's map and, once measured, its [`Sizes`]: rhai measures a map whole after every
/// `map.prop = v` and `set_if`, and a mapping sets a dozen properties on a map that holds
/// other maps, so re-walking each nested map every time was a sixth of a mapping's cost.
/// The measure is kept until the map changes: every change goes through [`Val::map_mut`],
/// which forgets it, and a map shared by two values is copied before it changes
/// (`Rc::make_mut`), so a kept measure is always that of the map as it is.
#[derive(Clone, Debug, Default)]
pub(super) struct MapBox<'a> {
    map: Map<'a>,
    sizes: Cell<Option<Sizes>>,
}

impl<'a> std::ops::Deref for MapBox<'a> {
    type Target = Map<'a>;
    fn deref(&self) -> &Map<'a> {
        &self.map
    }
}

impl<'a> MapBox<'a> {
    pub(super) fn into_map(self) -> Map<'a> {
        self.map
    }
}

/// One value. `Json` only ever holds an array or an object of the call's arguments: scalars
/// are read out into their own variants, so every operation sees one spelling of each type.
#[derive(Clone, Debug)]
pub(super) enum Val<'a> {
    Unit,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Text<'a>),
    Json(&'a Value),
    /// Shared until changed (`Rc::make_mut`): passing a map or array on, as `user.meta =
    /// meta` does, copies nothing.
    Array(Rc<Vec<Val<'a>>>),
    Map(Rc<MapBox<'a>>),
}

/// The kind of a value as rhai names it (`type_of`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    Unit,
    Bool,
    Int,
    Float,
    Str,
    Array,
    Map,
}

impl Kind {
    pub(super) fn rhai_name(self) -> &'static str {
        match self {
            Kind::Unit => "()",
            Kind::Bool => "bool",
            Kind::Int => "i64",
            Kind::Float => "f64",
            Kind::Str => "string",
            Kind::Array => "array",
            Kind::Map => "map",
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Kind::Int | Kind::Float)
    }
}

impl<'a> Val<'a> {
    pub(super) fn array(items: Vec<Val<'a>>) -> Val<'a> {
        Val::Array(Rc::new(items))
    }

    pub(super) fn map(map: Map<'a>) -> Val<'a> {
        Val::Map(Rc::new(MapBox {
            map,
            sizes: Cell::new(None),
        }))
    }

    /// A map with its measure already taken (each entry and what it holds, as
    /// [`Sizes::add`] counts a map): a literal measured while it was built.
    pub(super) fn map_measured(map: Map<'a>, sizes: Sizes) -> Val<'a> {
        Val::Map(Rc::new(MapBox {
            map,
            sizes: Cell::new(Some(sizes)),
        }))
    }

    /// A JSON value of the arguments as the script sees it; converts as
    /// `convert::json_ref_to_dynamic` does (integers that fit i64 stay integers, others are
    /// floats, `null` is `()`).
    pub(super) fn from_json(v: &'a Value) -> Val<'a> {
        match v {
            Value::Null => Val::Unit,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => number(n),
            Value::String(s) => Val::Str(Text::Ref(s)),
            Value::Array(_) | Value::Object(_) => Val::Json(v),
        }
    }

    /// An owned copy of a JSON value that does not live as long as the call (a lookup
    /// record read under its table's lock).
    pub(super) fn from_json_owned(v: &Value) -> Val<'a> {
        match v {
            Value::Null => Val::Unit,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => number(n),
            Value::String(s) => Val::Str(Text::Own(Rc::from(s.as_str()))),
            Value::Array(items) => Val::array(items.iter().map(Val::from_json_owned).collect()),
            Value::Object(obj) => Val::map(
                obj.iter()
                    .map(|(k, v)| (Text::Own(Rc::from(k.as_str())), Val::from_json_owned(v)))
                    .collect(),
            ),
        }
    }

    pub(super) fn kind(&self) -> Kind {
        match self {
            Val::Unit => Kind::Unit,
            Val::Bool(_) => Kind::Bool,
            Val::Int(_) => Kind::Int,
            Val::Float(_) => Kind::Float,
            Val::Str(_) => Kind::Str,
            Val::Json(Value::Array(_)) | Val::Array(_) => Kind::Array,
            Val::Json(_) | Val::Map(_) => Kind::Map,
        }
    }

    pub(super) fn is_unit(&self) -> bool {
        matches!(self, Val::Unit)
    }

    /// `map.key` / `map["key"]`: the value, `()` when absent; `None` when this is no map.
    pub(super) fn get(&self, key: &str) -> Option<Val<'a>> {
        match self {
            Val::Json(Value::Object(obj)) => Some(obj.get(key).map_or(Val::Unit, Val::from_json)),
            Val::Map(map) => Some(map_get(map, key).cloned().unwrap_or(Val::Unit)),
            _ => None,
        }
    }

    /// `array[i]`, counting from the end for a negative `i` as rhai does; `None` out of
    /// bounds (rhai's error) or when this is no array.
    pub(super) fn at(&self, i: i64) -> Option<Val<'a>> {
        let len = self.array_len()?;
        let i = if i < 0 {
            len.checked_add_signed(i as isize)?
        } else {
            usize::try_from(i).ok()?
        };
        match self {
            Val::Json(Value::Array(items)) => items.get(i).map(Val::from_json),
            Val::Array(items) => items.get(i).cloned(),
            _ => None,
        }
    }

    pub(super) fn array_len(&self) -> Option<usize> {
        match self {
            Val::Json(Value::Array(items)) => Some(items.len()),
            Val::Array(items) => Some(items.len()),
            _ => None,
        }
    }

    /// The elements of an array, each as the script sees it.
    pub(super) fn into_items(self) -> Option<Vec<Val<'a>>> {
        match self {
            Val::Json(Value::Array(items)) => Some(items.iter().map(Val::from_json).collect()),
            Val::Array(items) => Some(Rc::unwrap_or_clone(items)),
            _ => None,
        }
    }

    /// Makes an object of the arguments this value's own map (one level: the values inside
    /// stay borrowed) so that it can be changed; `None` when this is no map.
    pub(super) fn map_mut(&mut self) -> Option<&mut Map<'a>> {
        if let Val::Json(Value::Object(obj)) = self {
            let owned = obj
                .iter()
                .map(|(k, v)| (Text::Ref(k.as_str()), Val::from_json(v)))
                .collect();
            *self = Val::map(owned);
        }
        match self {
            Val::Map(map) => {
                let b = Rc::make_mut(map);
                b.sizes.set(None);
                Some(&mut b.map)
            }
            _ => None,
        }
    }

    /// `map[key] = v` followed by rhai's measure of the whole map: whether it is still within
    /// the limits (`None` when this is no map). Where the map's measure is kept, the new one
    /// is worked out from it, the entry replaced and the entry put in, instead of walking
    /// every entry again: a mapping sets one property after another on the same map.
    pub(super) fn insert_measured(&mut self, key: Text<'a>, v: Val<'a>) -> Option<bool> {
        let kept = match self {
            Val::Map(map) => map.sizes.get(),
            _ => None,
        };
        let mut added = Sizes::default();
        added.entry();
        // A value beyond the limits on its own puts the map beyond them too: `fits` says so
        // as soon as its walk gets there.
        let worked_out = kept.filter(|_| added.add(&v));
        let old = self.map_mut()?.insert(key, v);
        let Some(mut measure) = worked_out else {
            return Some(fits(self));
        };
        if let Some(old) = old {
            // Part of a map within the limits, so its own measure completes.
            let mut removed = Sizes::default();
            removed.entry();
            removed.add(&old);
            measure.remove(&removed);
        }
        measure.absorb(&added);
        let within = measure.within();
        if within && let Val::Map(map) = self {
            map.sizes.set(Some(measure));
        }
        Some(within)
    }

    /// [`Val::map_mut`] for arrays.
    pub(super) fn array_mut(&mut self) -> Option<&mut Vec<Val<'a>>> {
        if let Val::Json(Value::Array(items)) = self {
            let owned = items.iter().map(Val::from_json).collect();
            *self = Val::array(owned);
        }
        match self {
            Val::Array(items) => Some(Rc::make_mut(items)),
            _ => None,
        }
    }

    /// The JSON a script's result becomes, as `convert::dynamic_to_json` makes it from the
    /// same value in rhai (non-finite floats become `null`).
    pub(super) fn into_json(self) -> Value {
        match self {
            Val::Unit => Value::Null,
            Val::Bool(b) => Value::Bool(b),
            Val::Int(i) => Value::from(i),
            Val::Float(f) => float_json(f),
            Val::Str(t) => Value::String(t.as_str().to_owned()),
            Val::Json(v) => json_copy(v),
            Val::Array(items) => Value::Array(
                Rc::unwrap_or_clone(items)
                    .into_iter()
                    .map(Val::into_json)
                    .collect(),
            ),
            Val::Map(map) => Value::Object(
                Rc::unwrap_or_clone(map)
                    .map
                    .into_iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.into_json()))
                    .collect(),
            ),
        }
    }

    /// [`Val::into_json`] of a value the caller keeps.
    pub(super) fn to_json(&self) -> Value {
        match self {
            Val::Unit => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Int(i) => Value::from(*i),
            Val::Float(f) => float_json(*f),
            Val::Str(t) => Value::String(t.as_str().to_owned()),
            Val::Json(v) => json_copy(v),
            Val::Array(items) => Value::Array(items.iter().map(Val::to_json).collect()),
            Val::Map(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// `to_string(v)` and `${v}`: `None` where rhai's text is not certain here (arrays,
    /// maps).
    pub(super) fn to_text(&self) -> Option<Text<'a>> {
        match self {
            Val::Str(t) => Some(t.clone()),
            Val::Unit => Some(Text::Ref("")),
            Val::Bool(b) => Some(Text::Ref(if *b { "true" } else { "false" })),
            Val::Int(i) => Some(Text::owned(i.to_string())),
            // rhai writes floats its own way (`1.0`, `1e-7`): let it.
            Val::Float(f) => Some(Text::owned(rhai::Dynamic::from_float(*f).to_string())),
            _ => None,
        }
    }
}

/// What rhai's data-size limits measure, counted over a whole value as its
/// `calc_data_sizes` does: array elements, map entries and string bytes at every depth, so
/// an array of 5,001 two-key maps holds 10,002 map entries (over `MAX_MAP_SIZE`).
#[derive(Clone, Copy, Default, Debug)]
pub(super) struct Sizes {
    arrays: usize,
    maps: usize,
    strings: usize,
}

impl Sizes {
    /// Counts one more array element (rhai's `[…]` adds each item so).
    pub(super) fn element(&mut self) {
        self.arrays += 1;
    }

    /// Counts one more map entry.
    pub(super) fn entry(&mut self) {
        self.maps += 1;
    }

    /// Adds what `v` holds; `false` once the sizes are beyond rhai's limits (the walk stops
    /// there, so a check costs at most about the limits).
    pub(super) fn add(&mut self, v: &Val) -> bool {
        match v {
            Val::Str(t) => self.strings += t.as_str().len(),
            Val::Json(j) => return self.add_json(j),
            Val::Array(items) => {
                for item in items.iter() {
                    self.arrays += 1;
                    if !self.add(item) {
                        return false;
                    }
                }
            }
            Val::Map(map) => {
                let inner = match map.sizes.get() {
                    Some(s) => s,
                    None => {
                        // Measured on its own (stopping once it alone is beyond the
                        // limits), kept, then counted into the whole.
                        let mut inner = Sizes::default();
                        for item in map.values() {
                            inner.maps += 1;
                            if !inner.add(item) {
                                return false;
                            }
                        }
                        map.sizes.set(Some(inner));
                        inner
                    }
                };
                self.absorb(&inner);
            }
            Val::Unit | Val::Bool(_) | Val::Int(_) | Val::Float(_) => {}
        }
        self.within()
    }

    fn add_json(&mut self, v: &Value) -> bool {
        match v {
            Value::String(s) => self.strings += s.len(),
            Value::Array(items) => {
                for item in items {
                    self.arrays += 1;
                    if !self.add_json(item) {
                        return false;
                    }
                }
            }
            Value::Object(obj) => {
                for item in obj.values() {
                    self.maps += 1;
                    if !self.add_json(item) {
                        return false;
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
        self.within()
    }

    /// Adds the counts of another measure.
    fn absorb(&mut self, other: &Sizes) {
        self.arrays = self.arrays.saturating_add(other.arrays);
        self.maps = self.maps.saturating_add(other.maps);
        self.strings = self.strings.saturating_add(other.strings);
    }

    /// Takes away the counts of a part of what this measure counted.
    fn remove(&mut self, part: &Sizes) {
        self.arrays = self.arrays.saturating_sub(part.arrays);
        self.maps = self.maps.saturating_sub(part.maps);
        self.strings = self.strings.saturating_sub(part.strings);
    }

    /// Within rhai's limits (it refuses only sizes beyond them).
    pub(super) fn within(&self) -> bool {
        use crate::mapping::engine::{MAX_ARRAY_SIZE, MAX_MAP_SIZE, MAX_STRING_SIZE};
        self.strings <= MAX_STRING_SIZE
            && self.arrays <= MAX_ARRAY_SIZE
            && self.maps <= MAX_MAP_SIZE
    }
}

/// Whether `v`, measured as rhai measures a value it checks, is within rhai's limits.
pub(super) fn fits(v: &Val) -> bool {
    Sizes::default().add(v)
}

pub(super) fn map_get<'m, 'a>(map: &'m Map<'a>, key: &str) -> Option<&'m Val<'a>> {
    // Keys are ordered by their text (`Borrow<str>` agrees with `Ord`).
    map.get(key)
}

fn number<'a>(n: &serde_json::Number) -> Val<'a> {
    match n.as_i64() {
        Some(i) => Val::Int(i),
        None => Val::Float(n.as_f64().unwrap_or(f64::NAN)),
    }
}

pub(super) fn float_json(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// A copy of an argument's JSON as a round trip through rhai would give it back: numbers
/// beyond i64 come back as floats.
pub(super) fn json_copy(v: &Value) -> Value {
    match v {
        Value::Number(n) if n.as_i64().is_none() => float_json(n.as_f64().unwrap_or(f64::NAN)),
        Value::Array(items) => Value::Array(items.iter().map(json_copy).collect()),
        Value::Object(obj) => {
            Value::Object(obj.iter().map(|(k, v)| (k.clone(), json_copy(v))).collect())
        }
        other => other.clone(),
    }
}

/// `a == b` as rhai answers it; `None` for two arrays or two maps (rhai compares them
/// element by element through its own `==`).
pub(super) fn equals(a: &Val, b: &Val) -> Option<bool> {
    equality(a, b, true)
}

/// `a == b` (`want`) or `a != b` (`!want`) as rhai answers it. Not always the negation of
/// each other: with a NaN, rhai's `==` and `!=` are both `false`.
pub(super) fn equality(a: &Val, b: &Val, want: bool) -> Option<bool> {
    let same = match (a, b) {
        (Val::Unit, Val::Unit) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Int(x), Val::Int(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        _ => {
            let (ka, kb) = (a.kind(), b.kind());
            if ka.numeric() && kb.numeric() {
                let op = if want { FloatOp::Eq } else { FloatOp::Ne };
                return Some(float_op(as_float(a)?, as_float(b)?, op));
            }
            if ka == kb {
                return None;
            }
            false
        }
    };
    Some(same == want)
}

#[derive(Clone, Copy)]
enum FloatOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// rhai's comparison of two numbers one of which at least is a float: in checked builds
/// (`builtin.rs`, `impl_float`) they compare within `f64::EPSILON` relative to the larger
/// magnitude (absolute when either is zero), so `0.1 + 0.2 == 0.3`, `1e-20 == 0` and
/// `!(1e-20 > 0)`, while `inf == inf` and both `NaN == NaN` and `NaN != NaN` are `false`.
fn float_op(x: f64, y: f64, op: FloatOp) -> bool {
    let max = if x * y == 0.0 {
        1.0
    } else {
        x.abs().max(y.abs())
    };
    if max == 0.0 {
        return matches!(op, FloatOp::Eq | FloatOp::Le | FloatOp::Ge);
    }
    match op {
        FloatOp::Eq => (x - y).abs() / max <= f64::EPSILON,
        FloatOp::Ne => (x - y).abs() / max > f64::EPSILON,
        FloatOp::Gt => (x - y) / max > f64::EPSILON,
        FloatOp::Ge => (x - y) / max > -f64::EPSILON,
        FloatOp::Lt => (y - x) / max > f64::EPSILON,
        FloatOp::Le => (y - x) / max > -f64::EPSILON,
    }
}

/// `<`, `<=`, `>`, `>=` as rhai answers them: numbers, strings and booleans compare, `()`
/// and two values of different non-numeric types give `false`.
pub(super) fn compare(a: &Val, b: &Val, op: Cmp) -> Option<bool> {
    use std::cmp::Ordering;
    let ord: Ordering = match (a, b) {
        (Val::Int(x), Val::Int(y)) => x.cmp(y),
        (Val::Str(x), Val::Str(y)) => x.cmp(y),
        (Val::Bool(x), Val::Bool(y)) => x.cmp(y),
        (Val::Unit, Val::Unit) => return Some(false),
        _ => {
            let (ka, kb) = (a.kind(), b.kind());
            if ka.numeric() && kb.numeric() {
                let op = match op {
                    Cmp::Lt => FloatOp::Lt,
                    Cmp::Le => FloatOp::Le,
                    Cmp::Gt => FloatOp::Gt,
                    Cmp::Ge => FloatOp::Ge,
                };
                return Some(float_op(as_float(a)?, as_float(b)?, op));
            }
            if ka == kb {
                return None;
            }
            return Some(false);
        }
    };
    Some(match op {
        Cmp::Lt => ord.is_lt(),
        Cmp::Le => ord.is_le(),
        Cmp::Gt => ord.is_gt(),
        Cmp::Ge => ord.is_ge(),
    })
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
}

fn as_float(v: &Val) -> Option<f64> {
    match v {
        Val::Int(i) => Some(*i as f64),
        Val::Float(f) => Some(*f),
        _ => None,
    }
}

/// `a + b` for what the mappings add: integers (overflow is rhai's error, so `None`),
/// floats, strings (a `()` on either side adds nothing), arrays (concatenated).
pub(super) fn add<'a>(a: Val<'a>, b: Val<'a>) -> Option<Val<'a>> {
    Some(match (a, b) {
        (Val::Int(x), Val::Int(y)) => Val::Int(x.checked_add(y)?),
        (Val::Float(x), Val::Float(y)) => Val::Float(x + y),
        (Val::Int(x), Val::Float(y)) => Val::Float(x as f64 + y),
        (Val::Float(x), Val::Int(y)) => Val::Float(x + y as f64),
        (Val::Str(x), Val::Str(y)) => {
            let mut s = String::with_capacity(x.as_str().len() + y.as_str().len());
            s.push_str(x.as_str());
            s.push_str(y.as_str());
            Val::Str(Text::owned(s))
        }
        (Val::Str(x), Val::Unit) | (Val::Unit, Val::Str(x)) => Val::Str(x),
        (a, b) if a.kind() == Kind::Array && b.kind() == Kind::Array => {
            let mut items = a.into_items()?;
            items.extend(b.into_items()?);
            Val::array(items)
        }
        _ => return None,
    })
}

/// `a - b` for integers (overflow is rhai's error) and floats.
pub(super) fn sub<'a>(a: Val<'a>, b: Val<'a>) -> Option<Val<'a>> {
    Some(match (a, b) {
        (Val::Int(x), Val::Int(y)) => Val::Int(x.checked_sub(y)?),
        (Val::Float(x), Val::Float(y)) => Val::Float(x - y),
        (Val::Int(x), Val::Float(y)) => Val::Float(x as f64 - y),
        (Val::Float(x), Val::Int(y)) => Val::Float(x - y as f64),
        _ => return None,
    })
}
