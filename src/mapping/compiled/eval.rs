//! Runs a compiled function. Anything whose answer here could differ from rhai's (a type a
//! built-in does not take, an index out of bounds, `fail`, an operation limit) ends the run
//! with [`Flow::Bail`], and the caller runs the call in rhai instead: scripts are pure, so
//! running a call again from the start changes nothing.

use super::lower::{ArithOp, Block, Const, Expr, FnDef, Iter, Link, Native, Place, Step, Stmt};
use super::value::{self, Kind, Map, Sizes, Text, Val, fits};
use crate::mapping::engine::{MAX_ARRAY_SIZE, MAX_CALL_LEVELS, MAX_STRING_SIZE};
use crate::mapping::lookups::Lookups;
use std::borrow::Cow;
use std::time::Instant;

/// Statements and expressions one run may evaluate before it is left to rhai (whose own
/// limit, [`crate::mapping::MAX_OPERATIONS`], counts finer steps and is far above this).
pub(super) const MAX_STEPS: u64 = 200_000;

/// Steps between two looks at the clock.
const CLOCK_EVERY: u64 = 16;

pub(super) enum Flow<'a> {
    /// Hand the call to rhai.
    Bail,
    /// A built-in failed the way a `try` block catches (e.g. `parse_int` of no number).
    Throw,
    Return(Val<'a>),
    Break,
    Continue,
}

type R<'a, T> = Result<T, Flow<'a>>;

fn bail<'a, T>() -> R<'a, T> {
    Err(Flow::Bail)
}

fn need<'a, T>(v: Option<T>) -> R<'a, T> {
    v.ok_or(Flow::Bail)
}

pub(super) struct Run<'a> {
    pub fns: &'a [Option<FnDef>],
    pub lookups: &'a Lookups,
    pub steps: u64,
    pub depth: usize,
    /// A run still going then is left to rhai, whose time budget and off-worker re-run
    /// handle slow calls (a loop over a large array calling `contains` on it, say).
    pub deadline: Instant,
}

type Frame<'a> = Vec<Val<'a>>;

impl<'a> Run<'a> {
    fn step(&mut self) -> R<'a, ()> {
        self.steps += 1;
        if self.steps > MAX_STEPS
            || (self.steps.is_multiple_of(CLOCK_EVERY) && Instant::now() >= self.deadline)
        {
            return bail();
        }
        Ok(())
    }

    pub(super) fn call(&mut self, f: usize, mut args: Vec<Val<'a>>) -> R<'a, Val<'a>> {
        let Some(Some(def)) = self.fns.get(f) else {
            return bail();
        };
        if self.depth + 1 >= MAX_CALL_LEVELS {
            return bail();
        }
        self.depth += 1;
        args.resize(def.slots, Val::Unit);
        let result = self.block(&def.body, &mut args);
        self.depth -= 1;
        match result {
            Ok(v) | Err(Flow::Return(v)) => Ok(v),
            Err(Flow::Break | Flow::Continue) => bail(),
            Err(e) => Err(e),
        }
    }

    fn block(&mut self, block: &'a Block, frame: &mut Frame<'a>) -> R<'a, Val<'a>> {
        let mut last = Val::Unit;
        for s in block {
            last = self.stmt(s, frame)?;
        }
        Ok(last)
    }

    fn stmt(&mut self, s: &'a Stmt, frame: &mut Frame<'a>) -> R<'a, Val<'a>> {
        self.step()?;
        match s {
            Stmt::Let(slot, e) => {
                let v = self.expr(e, frame)?;
                frame[*slot] = v;
                Ok(Val::Unit)
            }
            Stmt::Assign(place, e) => {
                let v = self.expr(e, frame)?;
                self.assign(place, v, frame)?;
                Ok(Val::Unit)
            }
            Stmt::OpAssign(place, op, e) => {
                let v = self.expr(e, frame)?;
                let keys = self.keys(&place.path, frame)?;
                let target = navigate(&mut frame[place.slot], &keys)?;
                let old = std::mem::replace(target, Val::Unit);
                // Only what rhai's own `+=`/`-=` surely do the same as `+`/`-` with.
                let new = match (&old, &v, op) {
                    (Val::Int(_), Val::Int(_), _) | (Val::Str(_), Val::Str(_), ArithOp::Add) => {
                        arith(old, v, *op)?
                    }
                    (a, b, ArithOp::Add) if a.array_len().is_some() && b.array_len().is_some() => {
                        arith(old, v, *op)?
                    }
                    _ => return bail(),
                };
                if !fits(&new) {
                    return bail();
                }
                *target = new;
                // `map.prop op= v`: rhai then measures the whole map.
                if let Some((Key::Name(_), parents)) = keys.split_last()
                    && !fits(navigate(&mut frame[place.slot], parents)?)
                {
                    return bail();
                }
                Ok(Val::Unit)
            }
            Stmt::Expr(e) => self.expr(e, frame),
            Stmt::If(cond, then, otherwise) => {
                if self.truth(cond, frame)? {
                    self.block(then, frame)
                } else {
                    self.block(otherwise, frame)
                }
            }
            Stmt::For {
                var,
                counter,
                iter,
                body,
            } => {
                match iter {
                    Iter::Items(e) => {
                        let items = need(self.expr(e, frame)?.into_items())?;
                        for (i, item) in items.into_iter().enumerate() {
                            frame[*var] = item;
                            if let Some(c) = counter {
                                frame[*c] = Val::Int(i as i64);
                            }
                            if self.loop_body(body, frame)? {
                                break;
                            }
                        }
                    }
                    Iter::Range(from, to, inclusive) => {
                        let (Val::Int(from), Val::Int(to)) =
                            (self.expr(from, frame)?, self.expr(to, frame)?)
                        else {
                            return bail();
                        };
                        let end = if *inclusive {
                            to.checked_add(1)
                        } else {
                            Some(to)
                        };
                        let end = need(end)?;
                        for (i, n) in (from..end).enumerate() {
                            frame[*var] = Val::Int(n);
                            if let Some(c) = counter {
                                frame[*c] = Val::Int(i as i64);
                            }
                            if self.loop_body(body, frame)? {
                                break;
                            }
                        }
                    }
                }
                Ok(Val::Unit)
            }
            Stmt::Break => Err(Flow::Break),
            Stmt::Continue => Err(Flow::Continue),
            Stmt::Return(e) => Err(Flow::Return(self.expr(e, frame)?)),
            // rhai: the body's value, or `()` once the catch block ran.
            Stmt::Try(body, catch) => match self.block(body, frame) {
                Err(Flow::Throw) => self.block(catch, frame).map(|_| Val::Unit),
                other => other,
            },
        }
    }

    /// One pass of a loop body; `true` when it broke out.
    fn loop_body(&mut self, body: &'a Block, frame: &mut Frame<'a>) -> R<'a, bool> {
        self.step()?;
        match self.block(body, frame) {
            Ok(_) | Err(Flow::Continue) => Ok(false),
            Err(Flow::Break) => Ok(true),
            Err(e) => Err(e),
        }
    }

    fn truth(&mut self, e: &'a Expr, frame: &mut Frame<'a>) -> R<'a, bool> {
        match self.expr(e, frame)? {
            Val::Bool(b) => Ok(b),
            _ => bail(),
        }
    }

    fn expr(&mut self, e: &'a Expr, frame: &mut Frame<'a>) -> R<'a, Val<'a>> {
        self.step()?;
        Ok(match e {
            Expr::Const(c) => constant(c),
            Expr::Local(slot) => frame[*slot].clone(),
            Expr::Chain(base, links) => self.chain(base, links, frame)?,
            Expr::MutCall(place, native, args) => {
                let (a, b) = (self.arg(args, 0, frame)?, self.arg(args, 1, frame)?);
                let keys = self.keys(&place.path, frame)?;
                let target = navigate(&mut frame[place.slot], &keys)?;
                let result = changing_method(*native, target, a, b)?;
                // rhai measures a method's result and the object it changed, whole.
                if !fits(target) || !fits(&result) {
                    return bail();
                }
                result
            }
            // rhai measures a literal as it builds it, item by item (the sizes of each item
            // and all inside it): a run stops at the first item beyond the limits.
            Expr::Array(items) => {
                let mut sizes = Sizes::default();
                let mut out = Vec::with_capacity(items.len());
                for e in items {
                    let v = self.expr(e, frame)?;
                    sizes.element();
                    if !sizes.add(&v) {
                        return bail();
                    }
                    out.push(v);
                }
                Val::array(out)
            }
            Expr::Map(entries) => {
                let mut sizes = Sizes::default();
                let mut map = Map::new();
                for (k, e) in entries {
                    let v = self.expr(e, frame)?;
                    sizes.entry();
                    if !sizes.add(&v) {
                        return bail();
                    }
                    map.insert(Text::Ref(k), v);
                }
                // rhai refuses a literal naming a key twice, so what was counted is what
                // the map holds.
                Val::map_measured(map, sizes)
            }
            Expr::And(items) => {
                for item in items {
                    if !self.truth(item, frame)? {
                        return Ok(Val::Bool(false));
                    }
                }
                Val::Bool(true)
            }
            Expr::Or(items) => {
                for item in items {
                    if self.truth(item, frame)? {
                        return Ok(Val::Bool(true));
                    }
                }
                Val::Bool(false)
            }
            Expr::Coalesce(items) => {
                let mut v = Val::Unit;
                for item in items {
                    v = self.expr(item, frame)?;
                    if !v.is_unit() {
                        break;
                    }
                }
                v
            }
            Expr::Not(e) => Val::Bool(!self.truth(e, frame)?),
            Expr::Neg(e) => match self.expr(e, frame)? {
                Val::Int(i) => Val::Int(need(i.checked_neg())?),
                Val::Float(f) => Val::Float(-f),
                _ => return bail(),
            },
            Expr::Eq(a, b, want) => {
                let (a, b) = (self.expr(a, frame)?, self.expr(b, frame)?);
                Val::Bool(need(value::equality(&a, &b, *want))?)
            }
            Expr::Cmp(a, b, op) => {
                let (a, b) = (self.expr(a, frame)?, self.expr(b, frame)?);
                Val::Bool(need(value::compare(&a, &b, *op))?)
            }
            Expr::Arith(a, b, op) => {
                let (a, b) = (self.expr(a, frame)?, self.expr(b, frame)?);
                arith(a, b, *op)?
            }
            Expr::Interp(parts) => {
                let mut s = String::new();
                for p in parts {
                    let v = self.expr(p, frame)?;
                    s.push_str(need(v.to_text())?.as_str());
                    // rhai measures the text after each part: a later part that fails
                    // (caught by a `try`) must not hide a text already too long.
                    if s.len() > MAX_STRING_SIZE {
                        return bail();
                    }
                }
                Val::Str(Text::owned(s))
            }
            Expr::Call(f, args) => {
                let slots = self
                    .fns
                    .get(*f)
                    .and_then(Option::as_ref)
                    .map_or(0, |d| d.slots);
                let mut callee = Vec::with_capacity(slots.max(args.len()));
                for a in args {
                    callee.push(self.expr(a, frame)?);
                }
                self.call(*f, callee)?
            }
            Expr::Native(native, args) => {
                // Built-ins take one or two arguments (checked at load).
                let first = self.arg(args, 0, frame)?;
                let second = self.arg(args, 1, frame)?;
                native_call(self.lookups, *native, &first, second)?
            }
            Expr::Block(block) => self.block(block, frame)?,
        })
    }

    /// Argument `i` of a call, `()` past the last.
    fn arg(&mut self, args: &'a [Expr], i: usize, frame: &mut Frame<'a>) -> R<'a, Val<'a>> {
        match args.get(i) {
            Some(e) => self.expr(e, frame),
            None => Ok(Val::Unit),
        }
    }

    /// The values of a place's `[index]` steps, in order.
    fn keys(&mut self, path: &'a [Step], frame: &mut Frame<'a>) -> R<'a, Vec<Key<'a>>> {
        let mut keys = Vec::with_capacity(path.len());
        for s in path {
            // One step per link, as in `chain`.
            self.step()?;
            keys.push(match s {
                Step::Prop(p) => Key::Name(Text::Ref(p)),
                Step::Index(e) => match self.expr(e, frame)? {
                    Val::Str(t) => Key::Name(t),
                    Val::Int(i) => Key::At(i),
                    _ => return bail(),
                },
            });
        }
        Ok(keys)
    }

    fn assign(&mut self, place: &'a Place, v: Val<'a>, frame: &mut Frame<'a>) -> R<'a, ()> {
        let keys = self.keys(&place.path, frame)?;
        let Some((last, parents)) = keys.split_last() else {
            frame[place.slot] = v;
            return Ok(());
        };
        let parent = navigate(&mut frame[place.slot], parents)?;
        match last {
            // rhai measures the whole map after `map.prop = v` (and the value after
            // `map["key"] = v`, which the map holds).
            Key::Name(k) => {
                if !need(parent.insert_measured(k.clone(), v))? {
                    return bail();
                }
            }
            // … and the value after `array[i] = v`.
            Key::At(i) => {
                if !fits(&v) {
                    return bail();
                }
                let items = need(parent.array_mut())?;
                let at = need(array_index(items.len(), *i))?;
                items[at] = v;
            }
        }
        Ok(())
    }

    /// Walks `base` and its links, reading in place where the base is a variable.
    fn chain(
        &mut self,
        base: &'a Expr,
        links: &'a [Link],
        frame: &mut Frame<'a>,
    ) -> R<'a, Val<'a>> {
        // Property reads only (`rec.name`, `user.name?.givenName`), the chains mappings
        // are made of: nothing to evaluate before the walk.
        if links.iter().all(|l| matches!(l, Link::Prop(..))) {
            return self.walk(base, links, frame, |_| Ok(Val::Unit));
        }
        // rhai evaluates a chain's indices and arguments first, then its base (a block or a
        // changing method there may change a variable an index reads), then walks it; the
        // indices and arguments change no variable (checked at load). One value at most per
        // link (checked at load).
        let mut inline: [Option<Val<'a>>; 4] = Default::default();
        let mut spill: Vec<Option<Val<'a>>> = Vec::new();
        let mut n = 0;
        for link in links {
            let arg = match link {
                Link::Prop(..) => continue,
                Link::Index(e, _) => Some(e),
                Link::Method(_, a, _) => a.first(),
            };
            let v = match arg {
                Some(e) => self.expr(e, frame)?,
                None => Val::Unit,
            };
            match inline.get_mut(n) {
                Some(slot) => *slot = Some(v),
                None => spill.push(Some(v)),
            }
            n += 1;
        }
        let mut k = 0;
        self.walk(base, links, frame, |link| match link {
            Link::Prop(..) => Ok(Val::Unit),
            _ => {
                let slot = match inline.get_mut(k) {
                    Some(slot) => slot,
                    None => need(spill.get_mut(k - inline.len()))?,
                };
                k += 1;
                need(slot.take())
            }
        })
    }

    /// Evaluates a chain's base and walks its links, each given its value by `arg`.
    fn walk(
        &mut self,
        base: &'a Expr,
        links: &'a [Link],
        frame: &mut Frame<'a>,
        mut arg: impl FnMut(&'a Link) -> R<'a, Val<'a>>,
    ) -> R<'a, Val<'a>> {
        let start = match base {
            Expr::Local(_) => None,
            other => Some(self.expr(other, frame)?),
        };
        let mut cur: Cow<Val<'a>> = match (start, base) {
            (Some(v), _) => Cow::Owned(v),
            (None, Expr::Local(slot)) => Cow::Borrowed(&frame[*slot]),
            (None, _) => return bail(),
        };
        for link in links {
            // rhai counts operations per link: so does the step limit, which must stop a
            // compiled run before rhai's operation limit would stop the same run.
            self.step()?;
            let elvis = match link {
                Link::Prop(_, e, _) | Link::Index(_, e) | Link::Method(_, _, e) => *e,
            };
            if elvis && cur.is_unit() {
                return Ok(Val::Unit);
            }
            let arg = arg(link)?;
            cur = match cur {
                Cow::Borrowed(v) => follow(self.lookups, v, link, arg)?,
                Cow::Owned(v) => Cow::Owned(follow(self.lookups, &v, link, arg)?.into_owned()),
            };
        }
        Ok(cur.into_owned())
    }
}

/// One link of a chain from `v`; `arg` is the link's evaluated index or argument.
fn follow<'v, 'a>(
    lookups: &Lookups,
    v: &'v Val<'a>,
    link: &Link,
    arg: Val<'a>,
) -> R<'a, Cow<'v, Val<'a>>> {
    match link {
        Link::Prop(name, _, hint) => match v {
            Val::Map(map) => Ok(match map.get_hinted(name, hint) {
                Some(c) => Cow::Borrowed(c),
                None => Cow::Owned(Val::Unit),
            }),
            other => child(other, name),
        },
        Link::Index(..) => match arg {
            Val::Str(k) => child(v, k.as_str()),
            Val::Int(i) => Ok(Cow::Owned(need(v.at(i))?)),
            _ => bail(),
        },
        Link::Method(native, ..) => Ok(Cow::Owned(native_call(lookups, *native, v, arg)?)),
    }
}

/// A child of a map, borrowed where the map is the script's own.
fn child<'v, 'a>(v: &'v Val<'a>, key: &str) -> R<'a, Cow<'v, Val<'a>>> {
    match v {
        Val::Map(map) => Ok(match value::map_get(map, key) {
            Some(c) => Cow::Borrowed(c),
            None => Cow::Owned(Val::Unit),
        }),
        other => Ok(Cow::Owned(need(other.get(key))?)),
    }
}

enum Key<'a> {
    Name(Text<'a>),
    At(i64),
}

fn array_index(len: usize, i: i64) -> Option<usize> {
    let at = if i < 0 {
        len.checked_add_signed(isize::try_from(i).ok()?)?
    } else {
        usize::try_from(i).ok()?
    };
    (at < len).then_some(at)
}

/// The value a place's path leads to, made the script's own on the way. A missing key on
/// the way is rhai's error (it cannot set a property of `()`).
fn navigate<'v, 'a>(mut cur: &'v mut Val<'a>, keys: &[Key<'a>]) -> R<'a, &'v mut Val<'a>> {
    for key in keys {
        cur = match key {
            Key::Name(k) => need(need(cur.map_mut())?.get_mut(k.as_str()))?,
            Key::At(i) => {
                let items = need(cur.array_mut())?;
                let at = need(array_index(items.len(), *i))?;
                &mut items[at]
            }
        };
    }
    Ok(cur)
}

fn constant<'a>(c: &'a Const) -> Val<'a> {
    match c {
        Const::Unit => Val::Unit,
        Const::Bool(b) => Val::Bool(*b),
        Const::Int(i) => Val::Int(*i),
        Const::Float(f) => Val::Float(*f),
        Const::Str(s) => Val::Str(Text::Ref(s)),
        Const::Array(items) => Val::array(items.iter().map(constant).collect()),
        Const::Map(entries) => Val::map(
            entries
                .iter()
                .map(|(k, v)| (Text::Ref(k.as_str()), constant(v)))
                .collect(),
        ),
    }
}

fn arith<'a>(a: Val<'a>, b: Val<'a>, op: ArithOp) -> R<'a, Val<'a>> {
    let v = match op {
        ArithOp::Add => need(value::add(a, b))?,
        ArithOp::Sub => need(value::sub(a, b))?,
    };
    // rhai measures the result of `+` (concatenated arrays whole, with what they hold).
    if fits(&v) { Ok(v) } else { bail() }
}

/// `push`, `remove` and `set_if` on the value they change.
fn changing_method<'a>(n: Native, target: &mut Val<'a>, a: Val<'a>, b: Val<'a>) -> R<'a, Val<'a>> {
    match n {
        Native::Push => {
            let items = need(target.array_mut())?;
            items.push(a);
            if items.len() > MAX_ARRAY_SIZE {
                return bail();
            }
            Ok(Val::Unit)
        }
        Native::Remove => {
            let Val::Str(key) = a else {
                return bail();
            };
            let map = need(target.map_mut())?;
            Ok(map.remove(key.as_str()).unwrap_or(Val::Unit))
        }
        Native::SetIf => {
            let Val::Str(key) = a else {
                return bail();
            };
            if target.kind() != Kind::Map {
                return bail();
            }
            // The caller measures the map whole afterwards: kept up to date here, that
            // measure does not walk the map again.
            if present(&b) && !need(target.insert_measured(key, b))? {
                return bail();
            }
            Ok(Val::Unit)
        }
        _ => bail(),
    }
}

fn present(v: &Val) -> bool {
    match v {
        Val::Unit => false,
        Val::Str(t) => !t.as_str().is_empty(),
        _ => true,
    }
}

/// A built-in on `first` (the object of a method call) and its second argument; a result
/// beyond rhai's size limits, counted as rhai counts them, is rhai's to refuse.
fn native_call<'a>(
    lookups: &Lookups,
    n: Native,
    first: &Val<'a>,
    second: Val<'a>,
) -> R<'a, Val<'a>> {
    let v = native_result(lookups, n, first, second)?;
    // rhai measures every built-in's result whole (an array of maps counts their entries).
    if fits(&v) { Ok(v) } else { bail() }
}

fn native_result<'a>(
    lookups: &Lookups,
    n: Native,
    first: &Val<'a>,
    second: Val<'a>,
) -> R<'a, Val<'a>> {
    Ok(match n {
        Native::Present => Val::Bool(present(first)),
        Native::Lower | Native::Upper | Native::Trim => match first {
            Val::Unit => Val::Unit,
            Val::Str(t) => Val::Str(match (n, t) {
                (Native::Trim, Text::Ref(s)) => Text::Ref(s.trim()),
                (Native::Trim, t) => Text::owned(t.as_str().trim().to_string()),
                (Native::Lower, t) => Text::owned(t.as_str().to_lowercase()),
                (_, t) => Text::owned(t.as_str().to_uppercase()),
            }),
            _ => return bail(),
        },
        Native::TypeOf => Val::Str(Text::Ref(first.kind().rhai_name())),
        Native::ToString => Val::Str(need(first.to_text())?),
        Native::Len => match first {
            Val::Str(t) => Val::Int(t.as_str().chars().count() as i64),
            Val::Json(serde_json::Value::Object(obj)) => Val::Int(obj.len() as i64),
            Val::Map(map) => Val::Int(map.len() as i64),
            other => Val::Int(need(other.array_len())? as i64),
        },
        Native::Keys => match first {
            Val::Json(serde_json::Value::Object(obj)) => Val::array(
                obj.keys()
                    .map(|k| Val::Str(Text::Ref(k.as_str())))
                    .collect(),
            ),
            Val::Map(map) => Val::array(map.keys().map(|k| Val::Str(k.clone())).collect()),
            _ => return bail(),
        },
        Native::Contains => match (first, &second) {
            (Val::Str(s), Val::Str(sub)) => Val::Bool(s.as_str().contains(sub.as_str())),
            (Val::Str(_), _) => return bail(),
            (Val::Map(_) | Val::Json(serde_json::Value::Object(_)), Val::Str(k)) => {
                Val::Bool(map_has(first, k.as_str()))
            }
            (a, item) if a.array_len().is_some() => {
                let items = need(a.clone().into_items())?;
                let mut found = false;
                for x in &items {
                    if need(value::equals(x, item))? {
                        found = true;
                        break;
                    }
                }
                Val::Bool(found)
            }
            _ => return bail(),
        },
        Native::StartsWith | Native::EndsWith => match (first, &second) {
            (Val::Str(s), Val::Str(p)) => Val::Bool(if n == Native::StartsWith {
                s.as_str().starts_with(p.as_str())
            } else {
                s.as_str().ends_with(p.as_str())
            }),
            _ => return bail(),
        },
        Native::ParseInt => match first {
            Val::Str(s) => match s.as_str().trim().parse::<i64>() {
                Ok(i) => Val::Int(i),
                Err(_) => return Err(Flow::Throw),
            },
            _ => return bail(),
        },
        Native::Lookup => {
            let Val::Str(table) = first else {
                return bail();
            };
            if second.is_unit() {
                return Ok(Val::Unit);
            }
            let key = need(second.to_text())?;
            lookups
                .with_record(table.as_str(), key.as_str(), Val::from_json_owned)
                .unwrap_or(Val::Unit)
        }
        Native::Print => {
            let text = need(first.to_text())?;
            tracing::info!(target: "scimgate::script", "{}", text.as_str());
            Val::Unit
        }
        Native::GetCi => match (first, &second) {
            // The helper for `()` takes a string key only.
            (Val::Unit, Val::Str(_)) => Val::Unit,
            (Val::Map(_) | Val::Json(serde_json::Value::Object(_)), Val::Str(k)) => {
                get_ci(first, k.as_str())
            }
            _ => return bail(),
        },
        Native::Split => match (first, &second) {
            (Val::Unit, Val::Str(_)) => Val::array(Vec::new()),
            (Val::Str(s), Val::Str(sep)) => Val::array(split(s.as_str(), sep.as_str())),
            (a, Val::Str(sep)) if a.array_len().is_some() => {
                let mut out = Vec::new();
                for item in need(a.clone().into_items())? {
                    if let Val::Str(s) = item {
                        out.extend(split(s.as_str(), sep.as_str()));
                    }
                }
                Val::array(out)
            }
            _ => return bail(),
        },
        Native::FlattenExtension => match (first, &second) {
            (Val::Unit, Val::Str(_)) => Val::map(Map::new()),
            (Val::Map(_) | Val::Json(serde_json::Value::Object(_)), Val::Str(urn)) => {
                flatten(first, urn.as_str())?
            }
            _ => return bail(),
        },
        Native::FromJson => match first {
            Val::Str(s) => match serde_json::from_str::<serde_json::Value>(s.as_str()) {
                Ok(v) => Val::from_json_owned(&v),
                Err(_) => return Err(Flow::Throw),
            },
            _ => return bail(),
        },
        Native::Fail | Native::Push | Native::Remove | Native::SetIf => return bail(),
    })
}

fn map_has(map: &Val, key: &str) -> bool {
    match map {
        Val::Map(m) => value::map_get(m, key).is_some(),
        Val::Json(serde_json::Value::Object(obj)) => obj.contains_key(key),
        _ => false,
    }
}

/// `get_ci`: the exact key first, then the first key equal ignoring ASCII case.
fn get_ci<'a>(map: &Val<'a>, key: &str) -> Val<'a> {
    match map {
        Val::Map(m) => value::map_get(m, key)
            .or_else(|| {
                m.iter()
                    .find(|(k, _)| k.as_str().eq_ignore_ascii_case(key))
                    .map(|(_, v)| v)
            })
            .cloned()
            .unwrap_or(Val::Unit),
        Val::Json(serde_json::Value::Object(obj)) => obj
            .get(key)
            .or_else(|| {
                obj.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, v)| v)
            })
            .map_or(Val::Unit, Val::from_json),
        _ => Val::Unit,
    }
}

/// `split(s, sep)` as the helper: trimmed, non-empty parts; an empty separator keeps `s`.
fn split<'a>(s: &str, sep: &str) -> Vec<Val<'a>> {
    crate::mapping::helpers::split_parts(s, sep)
        .map(|p| Val::Str(Text::owned(p.to_string())))
        .collect()
}

/// `flatten_extension` as the helper: each non-null attribute of the extension as text.
fn flatten<'a>(resource: &Val<'a>, urn: &str) -> R<'a, Val<'a>> {
    let ext = match get_ci(resource, urn) {
        v @ (Val::Map(_) | Val::Json(serde_json::Value::Object(_))) => v,
        _ => return Ok(Val::map(Map::new())),
    };
    let entries: Vec<(Text<'a>, Val<'a>)> = match ext {
        Val::Map(m) => std::rc::Rc::unwrap_or_clone(m)
            .into_map()
            .into_iter()
            .collect(),
        Val::Json(serde_json::Value::Object(obj)) => obj
            .iter()
            .map(|(k, v)| (Text::Ref(k.as_str()), Val::from_json(v)))
            .collect(),
        _ => Vec::new(),
    };
    let mut out = Map::new();
    for (k, v) in entries {
        let text = match v {
            Val::Unit => continue,
            Val::Str(t) => t,
            v @ (Val::Int(_) | Val::Bool(_) | Val::Float(_)) => need(v.to_text())?,
            other => Text::owned(other.into_json().to_string()),
        };
        out.insert(k, Val::Str(text));
    }
    Ok(Val::map(out))
}
