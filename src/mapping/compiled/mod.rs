//! Compiled scripts: the functions of a profile's scripts turned, at load, into a form that
//! runs without rhai's interpreter and reads the call's JSON in place instead of converting
//! it to rhai values and back. The scripts stay the integrator's rhai; nothing in them
//! changes.
//!
//! Why: rhai walks its syntax tree at about a microsecond per statement, and each call
//! converted its arguments and result between JSON and rhai values; a user's mapping cost
//! ~40 µs of the ~200 µs a GET took (issue 11's profile). Compiled, it takes a few.
//!
//! How it stays rhai's behaviour:
//! - Only a part of the language compiles (variables, maps, arrays, `if`, `for`, `try`
//!   without a catch variable, `return`, the operators and built-ins the mappings use). A
//!   function using anything else, or calling such a function, runs in rhai, decided at load.
//! - At run time every operation whose result is not certain to be rhai's (a built-in given
//!   a type it does not take, an index out of bounds, `fail(…)`, limits) stops the compiled
//!   run, and the call runs in rhai from the start: scripts do no I/O, so nothing is done
//!   twice. Errors therefore always come from rhai, with its messages and line numbers.
//! - Tests run every bundled profile's functions both ways over their samples and over
//!   generated records and compare the results (`tests.rs`).

mod answer;
mod eval;
mod lower;
#[cfg(test)]
mod tests;
mod value;

use super::lookups::Lookups;
pub use answer::Answer;
use rhai::AST;
use serde_json::Value;
use std::collections::HashMap;

/// The compiled functions of one script.
pub(crate) struct Program {
    /// Indexed as rhai's `iter_fn_def`; `None` where the function runs in rhai.
    fns: Vec<Option<lower::FnDef>>,
    /// Name → (arity, index) of the compiled ones.
    by_name: HashMap<String, Vec<(usize, usize)>>,
    /// Functions left to rhai and why, for `scimgate check` and tests.
    skipped: Vec<(String, usize, String)>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("compiled", &self.by_name.keys().collect::<Vec<_>>())
            .field("skipped", &self.skipped)
            .finish()
    }
}

impl Program {
    /// Compiles what can be compiled of `ast` (after the intrinsics were dropped from it).
    /// Runs once per script at load and on reload.
    pub(crate) fn new(ast: &AST) -> Program {
        let lowered = lower::lower_ast(ast);
        let sigs: Vec<String> = lowered.iter().map(|(n, a, _)| format!("{n}/{a}")).collect();
        let mut skipped = Vec::new();
        let mut fns: Vec<Option<lower::FnDef>> = Vec::with_capacity(lowered.len());
        for (name, arity, result) in lowered {
            match result {
                Ok(def) => fns.push(Some(def)),
                Err(lower::Unsupported(why)) => {
                    skipped.push((name, arity, why));
                    fns.push(None);
                }
            }
        }
        // A function calling one that runs in rhai runs in rhai too, to a fixed point.
        loop {
            let mut changed = false;
            for i in 0..fns.len() {
                let blocked = fns[i].as_ref().and_then(|def| {
                    def.calls
                        .iter()
                        .find(|&&c| fns.get(c).is_none_or(Option::is_none))
                        .copied()
                });
                if let Some(callee) = blocked
                    && let Some(def) = fns[i].take()
                {
                    let why = format!(
                        "it calls {}, which runs in rhai",
                        sigs.get(callee).map_or("?", String::as_str)
                    );
                    skipped.push((def.name, def.params, why));
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let mut by_name: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        for (i, def) in fns.iter().enumerate() {
            if let Some(d) = def {
                by_name
                    .entry(d.name.clone())
                    .or_default()
                    .push((d.params, i));
            }
        }
        Program {
            fns,
            by_name,
            skipped,
        }
    }

    fn index(&self, func: &str, arity: usize) -> Option<usize> {
        self.by_name
            .get(func)?
            .iter()
            .find(|(a, _)| *a == arity)
            .map(|(_, i)| *i)
    }

    /// Whether `func` with `arity` parameters runs compiled.
    pub(crate) fn has(&self, func: &str, arity: usize) -> bool {
        self.index(func, arity).is_some()
    }

    /// Whether `func` with `arity` parameters may read its parameter `i`: `false` only for
    /// a compiled function whose body never names it, so that neither the compiled run nor
    /// rhai running the same body can answer differently for another value of it.
    pub(crate) fn reads_param(&self, func: &str, arity: usize, i: usize) -> bool {
        self.index(func, arity)
            .and_then(|f| self.fns.get(f)?.as_ref())
            .is_none_or(|def| def.reads.get(i).copied().unwrap_or(true))
    }

    /// The functions left to rhai, with the reason: `(name, arity, why)`.
    pub(crate) fn skipped(&self) -> &[(String, usize, String)] {
        &self.skipped
    }

    /// Runs `func(args…)` compiled. `None` when the function is not compiled or the run
    /// met something only rhai answers for certain: the caller then runs the call in rhai.
    #[cfg(test)]
    pub(crate) fn call(&self, func: &str, args: &[&Value], lookups: &Lookups) -> Option<Value> {
        self.call_then(func, args, lookups, |a| a.to_json()).ok()
    }

    /// [`Program::call`] handing the answer to `then` where it lies (no `Value` built of
    /// it); `then` comes back unused where rhai is to answer.
    pub(crate) fn call_then<T, F>(
        &self,
        func: &str,
        args: &[&Value],
        lookups: &Lookups,
        then: F,
    ) -> Result<T, F>
    where
        F: FnOnce(Answer<'_, '_>) -> T,
    {
        let Some(i) = self.index(func, args.len()) else {
            return Err(then);
        };
        let args = args.iter().map(|a| value::Val::from_json(a)).collect();
        self.answer(i, args, lookups, then)
    }

    /// [`Program::call`] with a first argument given as JSON text: read straight into the
    /// script's values, as the `serde_json::Value` of that text would be read (no string
    /// copies, no maps built twice). `None` also when the text is not one the plain reader
    /// takes (`crate::json::plain`): the caller then parses it and runs the call in rhai.
    #[cfg(test)]
    pub(crate) fn call_text(
        &self,
        func: &str,
        first: &str,
        rest: &[&Value],
        lookups: &Lookups,
    ) -> Option<Value> {
        self.call_text_then(func, first, rest, lookups, |a| a.to_json())
            .ok()
    }

    /// [`Program::call_text`] handing the answer to `then` where it lies (no `Value` built
    /// of it); `then` comes back unused where rhai is to answer.
    pub(crate) fn call_text_then<T, F>(
        &self,
        func: &str,
        first: &str,
        rest: &[&Value],
        lookups: &Lookups,
        then: F,
    ) -> Result<T, F>
    where
        F: FnOnce(Answer<'_, '_>) -> T,
    {
        let Some(i) = self.index(func, rest.len() + 1) else {
            return Err(then);
        };
        let Some(first) = crate::json::plain::parse_as::<value::FromText>(first) else {
            return Err(then);
        };
        let mut args = Vec::with_capacity(rest.len() + 1);
        args.push(first);
        args.extend(rest.iter().map(|a| value::Val::from_json(a)));
        self.answer(i, args, lookups, then)
    }

    /// Runs compiled function `i` on `args` and hands its answer to `then`; `then` comes
    /// back unused where rhai is to answer.
    fn answer<'a, T, F>(
        &'a self,
        i: usize,
        args: Vec<value::Val<'a>>,
        lookups: &'a Lookups,
        then: F,
    ) -> Result<T, F>
    where
        F: FnOnce(Answer<'_, '_>) -> T,
    {
        let mut run = eval::Run {
            fns: &self.fns,
            lookups,
            steps: 0,
            depth: 0,
            deadline: std::time::Instant::now() + super::INLINE_SLICE,
        };
        match run.call(i, args) {
            Ok(v) => Ok(then(Answer::of(&v))),
            Err(_) => Err(then),
        }
    }
}
