//! The mapping layer: the integrator's rhai scripts that turn SCIM resources into the legacy
//! app's records and back.
//!
//! A profile's scripts live in `scripts/<profile>/*.rhai`, one file per resource kind (the
//! file stem is the script name: `user`, `group`). Each defines plain functions the gateway
//! calls, e.g. `fn to_backend(user, ctx)` and `fn from_backend(rec, ctx)`, or hooks returning
//! a *plan* of backend requests. Scripts never do I/O: they get maps, return maps or plans,
//! and read backend data only through cached [`Lookups`].
//!
//! How it runs:
//! - Every script is compiled once at [`ScriptSet::load`]; the compiled set sits behind an
//!   `ArcSwap` that [`ScriptSet::reload`] replaces atomically, so calls in flight finish on
//!   the scripts they started with.
//! - Each worker thread has its own sandboxed rhai engine (see the limits below); the
//!   set's [`Lookups`] travel with each call as rhai's per-call tag, so one engine serves
//!   every profile on its thread.
//! - Only functions run: top-level statements are never evaluated, so a top-level `let` or
//!   `const` is invisible inside `fn`s (and reading one is a compile error).
//!
//! Helpers available to scripts (Rust functions, see `helpers.rs`): `lookup(table, key)`,
//! `split(s, sep)`, `flatten_extension(resource, urn)`, `lower`, `upper`, `trim`,
//! `get_ci(map, key)`, `now()`, `parse_date(s)`, `format_date(secs)`, `to_json(v)`,
//! `from_json(s)` and `fail(kind, message)` to reject a request with a SCIM 400/409.

mod compiled;
mod convert;
mod engine;
mod error;
mod helpers;
mod lint;
mod lookups;
mod plan;
mod samples;

pub use compiled::Answer;
pub use engine::{
    MAX_ARRAY_SIZE, MAX_CALL_LEVELS, MAX_EXPR_DEPTHS, MAX_MAP_SIZE, MAX_OPERATIONS, MAX_STRING_SIZE,
};
pub use error::MappingError;
pub use lint::lint_scripts;
pub use lookups::Lookups;
pub use plan::PlanStep;
pub use samples::check_samples;

use crate::metrics::{Metrics, ScriptErrorKind};
use arc_swap::ArcSwap;
use convert::{dynamic_to_json, json_ref_to_dynamic};
use rhai::{AST, CallFnOptions, Dynamic, EvalAltResult, Scope};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One compiled script and the signatures of its functions.
struct Compiled {
    /// File name, used in every error (`user.rhai`).
    file: String,
    ast: AST,
    /// Function name → the arities it is defined with.
    fns: HashMap<String, Vec<usize>>,
    /// The functions that run without the interpreter.
    program: compiled::Program,
}

/// The `ctx` argument of `func(_, ctx)` in `compiled`: made by `make` unless the scripts run
/// compiled and the function is compiled and never names its `ctx` parameter, then `()`.
fn ctx_if_read(
    compile: bool,
    compiled: &Compiled,
    func: &str,
    make: impl FnOnce() -> Value,
) -> Value {
    if !compile || compiled.program.reads_param(func, 2, 1) {
        make()
    } else {
        Value::Null
    }
}

/// All scripts of one profile, compiled, ready to be called from any thread.
pub struct ScriptSet {
    dir: PathBuf,
    lookups: Lookups,
    scripts: ArcSwap<HashMap<String, Arc<Compiled>>>,
    metrics: Option<Arc<Metrics>>,
    /// Wall-clock time one call may run.
    budget: Duration,
    /// Whether calls run compiled where they can (`[server] compile_scripts`).
    compile: bool,
}

impl std::fmt::Debug for ScriptSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scripts = self.scripts.load();
        let mut names: Vec<&String> = scripts.keys().collect();
        names.sort();
        f.debug_struct("ScriptSet")
            .field("dir", &self.dir)
            .field("scripts", &names)
            .finish()
    }
}

impl ScriptSet {
    /// Compiles every `*.rhai` in `dir` (file stem = script name). Runs at startup and by
    /// `scimgate check`. Fails with every problem found — unreadable files and each file's
    /// compile error with its line — so an integrator fixes them in one pass.
    pub fn load(dir: &Path, lookups: Lookups) -> Result<ScriptSet, Vec<MappingError>> {
        let scripts = compile_dir(dir)?;
        Ok(ScriptSet {
            dir: dir.to_path_buf(),
            lookups,
            scripts: ArcSwap::from_pointee(scripts),
            metrics: None,
            budget: engine::DEFAULT_TIME_BUDGET,
            compile: true,
        })
    }

    /// Whether functions run compiled where they can (the default) or every call runs in
    /// rhai's interpreter (`[server] compile_scripts = false`, for an operator who suspects
    /// the compiled form, and for measuring it).
    pub fn with_compiled(mut self, compile: bool) -> ScriptSet {
        self.compile = compile;
        self
    }

    /// The functions of `script` that run in rhai's interpreter rather than compiled, each
    /// as `name/arity: why`. `scimgate check` lists them.
    pub fn interpreted(&self, script: &str) -> Vec<String> {
        self.scripts
            .load()
            .get(script)
            .map(|c| {
                c.program
                    .skipped()
                    .iter()
                    .map(|(n, a, why)| format!("{n}/{a}: {why}"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The names of the loaded scripts (file stems), sorted.
    pub fn script_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.scripts.load().keys().cloned().collect();
        names.sort();
        names
    }

    /// Whether `script`'s `func` taking `arity` parameters runs compiled.
    pub fn is_compiled(&self, script: &str, func: &str, arity: usize) -> bool {
        self.compile
            && self
                .scripts
                .load()
                .get(script)
                .is_some_and(|c| c.program.has(func, arity))
    }

    /// Sets the wall-clock time one call may run (`[server] script_timeout_ms`); a call
    /// still running then is stopped and fails naming the script and function.
    pub fn with_time_budget(mut self, budget: Duration) -> ScriptSet {
        self.budget = budget;
        self
    }

    /// Counts every failed call of this set in `metrics` (as a bug or as a deliberate
    /// rejection); the gateway sets it once at startup.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> ScriptSet {
        self.metrics = Some(metrics);
        self
    }

    /// Passes a call's result through, counting a failure in the metrics when set.
    fn counted<T>(&self, result: Result<T, MappingError>) -> Result<T, MappingError> {
        if let (Err(e), Some(m)) = (&result, &self.metrics) {
            m.script_error(if e.client_error.is_some() {
                ScriptErrorKind::Rejected
            } else {
                ScriptErrorKind::Error
            });
        }
        result
    }

    /// Recompiles the directory and swaps the new scripts in atomically. On any error the
    /// running scripts stay in place and the errors are returned. Runs on an operator's
    /// reload (signal or admin endpoint).
    pub fn reload(&self) -> Result<(), Vec<MappingError>> {
        let scripts = compile_dir(&self.dir)?;
        self.scripts.store(Arc::new(scripts));
        Ok(())
    }

    /// Recompiles the directory, asks `check` about the candidate (the same questions
    /// startup asks; every problem it names refuses the reload) and only then swaps the new
    /// scripts in atomically. On any error the running scripts stay in place. Runs on an
    /// operator's reload.
    pub fn reload_checked(
        &self,
        check: impl FnOnce(&ScriptSet) -> Vec<String>,
    ) -> Result<(), Vec<String>> {
        let compiled = compile_dir(&self.dir)
            .map_err(|errs| errs.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
        let candidate = ScriptSet {
            dir: self.dir.clone(),
            lookups: self.lookups.clone(),
            scripts: ArcSwap::from_pointee(compiled),
            metrics: None,
            budget: self.budget,
            compile: self.compile,
        };
        let problems = check(&candidate);
        if !problems.is_empty() {
            return Err(problems);
        }
        self.scripts.store(candidate.scripts.load_full());
        Ok(())
    }

    /// The lookup tables scripts of this set read; the gateway fills them from the backend.
    pub fn lookups(&self) -> &Lookups {
        &self.lookups
    }

    /// Whether `script` defines `func` taking `arity` parameters. The gateway asks before
    /// calling optional hooks (e.g. a delete hook) so that absent hooks fall back to the
    /// profile's declared behaviour.
    pub fn has_fn(&self, script: &str, func: &str, arity: usize) -> bool {
        self.scripts
            .load()
            .get(script)
            .and_then(|c| c.fns.get(func))
            .is_some_and(|arities| arities.contains(&arity))
    }

    /// Calls `func(args…)` in `script` on this thread's engine. Arguments are converted to
    /// rhai values (objects → maps), the result back to JSON. Runs on every mapped request.
    /// Errors carry the script, the function and the line; a script's `fail(…)` comes back
    /// with [`MappingError::client_error`] set.
    pub fn call(&self, script: &str, func: &str, args: Vec<Value>) -> Result<Value, MappingError> {
        let refs: Vec<&Value> = args.iter().collect();
        self.call_with(script, func, &refs)
    }

    /// [`ScriptSet::call`] on borrowed arguments: a caller that keeps its value (the resource
    /// a write maps to the legacy record and then goes on with) copies nothing for the call.
    pub fn call_with(
        &self,
        script: &str,
        func: &str,
        args: &[&Value],
    ) -> Result<Value, MappingError> {
        // rhai's answer is copied here: next to its interpretation, a copy costs nothing.
        self.call_with_then(script, func, args, |a| a.to_json())
    }

    /// [`ScriptSet::call_with`] with its first argument given as JSON text (a record as the
    /// legacy app sent it): a compiled function reads it in place, building no `Value`;
    /// where the call runs in rhai the text is parsed first. The outer `Err` says the text
    /// is not JSON (then nothing ran); otherwise the result is what `call_with` gives for
    /// the parsed text.
    pub fn call_on_text(
        &self,
        script: &str,
        func: &str,
        first: &[u8],
        rest: &[&Value],
    ) -> Result<Result<Value, MappingError>, serde_json::Error> {
        // rhai's answer is copied here: next to its interpretation, a copy costs nothing.
        self.call_on_text_then(script, func, first, rest, |a| a.to_json())
    }

    /// [`ScriptSet::call_on_text`] handing the answer to `then` where it lies: the compiled
    /// run's own value, or rhai's answer as JSON; no `Value` is built of a compiled answer.
    /// The outer `Err` says the text is not JSON (then nothing ran).
    pub fn call_on_text_then<T>(
        &self,
        script: &str,
        func: &str,
        first: &[u8],
        rest: &[&Value],
        then: impl FnOnce(Answer<'_, '_>) -> T,
    ) -> Result<Result<T, MappingError>, serde_json::Error> {
        let compiled = match self.compiled_for_text(script, func, rest.len() + 1, first)? {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        self.call_text_in(&compiled, func, first, rest, then)
    }

    /// The scripts as loaded, for a call on `first` as text: a function that is not there
    /// is said after whether the text is JSON, as when the text is parsed before the call.
    fn compiled_for_text(
        &self,
        script: &str,
        func: &str,
        arity: usize,
        first: &[u8],
    ) -> Result<Result<Arc<Compiled>, MappingError>, serde_json::Error> {
        match self.compiled(script, func, arity) {
            Ok(c) => Ok(Ok(c)),
            Err(e) => {
                crate::json::from_slice(first)?;
                Ok(self.counted(Err(e)))
            }
        }
    }

    /// [`ScriptSet::call_on_text_then`] of `func(record, ctx)`, `ctx` made by `ctx` only
    /// when the function may read it ([`ScriptSet::call_with_ctx_then`]).
    pub fn call_on_text_ctx_then<T>(
        &self,
        script: &str,
        func: &str,
        first: &[u8],
        ctx: impl FnOnce() -> Value,
        then: impl FnOnce(Answer<'_, '_>) -> T,
    ) -> Result<Result<T, MappingError>, serde_json::Error> {
        let compiled = match self.compiled_for_text(script, func, 2, first)? {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let ctx = ctx_if_read(self.compile, &compiled, func, ctx);
        self.call_text_in(&compiled, func, first, &[&ctx], then)
    }

    /// [`ScriptSet::call_on_text_then`] on the scripts as loaded once (a reload meanwhile
    /// does not change the function between the questions asked of it and its call).
    fn call_text_in<T>(
        &self,
        compiled: &Compiled,
        func: &str,
        first: &[u8],
        rest: &[&Value],
        then: impl FnOnce(Answer<'_, '_>) -> T,
    ) -> Result<Result<T, MappingError>, serde_json::Error> {
        let then = match std::str::from_utf8(first) {
            Ok(text) if self.compile => {
                match compiled
                    .program
                    .call_text_then(func, text, rest, &self.lookups, then)
                {
                    Ok(done) => return Ok(Ok(done)),
                    Err(then) => then,
                }
            }
            _ => then,
        };
        let parsed = crate::json::from_slice(first)?;
        let mut args = Vec::with_capacity(rest.len() + 1);
        args.push(&parsed);
        args.extend_from_slice(rest);
        Ok(self.counted(self.call_in(compiled, func, &args, then)))
    }

    /// [`ScriptSet::call_with`] handing the answer to `then` where it lies: the compiled
    /// run's own value, or rhai's answer as JSON; no `Value` is built of a compiled answer.
    pub fn call_with_then<T>(
        &self,
        script: &str,
        func: &str,
        args: &[&Value],
        then: impl FnOnce(Answer<'_, '_>) -> T,
    ) -> Result<T, MappingError> {
        let answered = self
            .compiled(script, func, args.len())
            .and_then(|compiled| self.call_in(&compiled, func, args, then));
        self.counted(answered)
    }

    /// [`ScriptSet::call_with_then`] of `func(first, ctx)`, the gateway's `ctx` made by `ctx`
    /// only when the function may read it: a compiled function that never names its `ctx`
    /// parameter gets `()` (neither its compiled run nor rhai running the same body can
    /// answer differently), saving a map built and dropped per mapped record.
    pub fn call_with_ctx_then<T>(
        &self,
        script: &str,
        func: &str,
        first: &Value,
        ctx: impl FnOnce() -> Value,
        then: impl FnOnce(Answer<'_, '_>) -> T,
    ) -> Result<T, MappingError> {
        let answered = self.compiled(script, func, 2).and_then(|compiled| {
            let ctx = ctx_if_read(self.compile, &compiled, func, ctx);
            self.call_in(&compiled, func, &[first, &ctx], then)
        });
        self.counted(answered)
    }

    /// The call, compiled or in rhai, on the scripts as loaded once.
    fn call_in<T>(
        &self,
        compiled: &Compiled,
        func: &str,
        args: &[&Value],
        then: impl FnOnce(Answer<'_, '_>) -> T,
    ) -> Result<T, MappingError> {
        let then = if self.compile {
            match compiled.program.call_then(func, args, &self.lookups, then) {
                Ok(done) => return Ok(done),
                Err(then) => then,
            }
        } else {
            then
        };
        self.interpret(compiled, func, args)
            .map(|answer| then(Answer::json(&answer)))
    }

    /// The call in rhai (tests compare it with the compiled form).
    #[cfg(test)]
    pub(crate) fn call_interpreted(
        &self,
        script: &str,
        func: &str,
        args: Vec<Value>,
    ) -> Result<Value, MappingError> {
        let compiled = self.compiled(script, func, args.len())?;
        let refs: Vec<&Value> = args.iter().collect();
        self.interpret(&compiled, func, &refs)
    }

    /// Runs the call in rhai's interpreter on this thread's engine, within the time budget.
    fn interpret(
        &self,
        compiled: &Compiled,
        func: &str,
        args: &[&Value],
    ) -> Result<Value, MappingError> {
        let budget = self.budget;
        // Top-level statements are not run (`eval_ast(false)`): it would re-run them on
        // every call for no benefit, as functions cannot see their variables anyway.
        let run = |within: Duration| {
            let options = CallFnOptions::new()
                .eval_ast(false)
                .with_tag(self.lookups.clone());
            let args: Vec<Dynamic> = args.iter().map(|a| json_ref_to_dynamic(a)).collect();
            engine::with_budget(within, |engine| {
                engine.call_fn_with_options::<Dynamic>(
                    options,
                    &mut Scope::new(),
                    &compiled.ast,
                    func,
                    args,
                )
            })
        };
        let result = run_off_the_workers_if_slow(budget, run).map_err(|e| match *e {
            EvalAltResult::ErrorTerminated(ref token, pos) if is_timed_out(token) => {
                MappingError::new(
                    &compiled.file,
                    func,
                    pos.line(),
                    format!(
                        "stopped after running longer than {} ms",
                        budget.as_millis()
                    ),
                )
            }
            other => MappingError::from_eval(&compiled.file, func, other),
        })?;
        dynamic_to_json(result)
            .map_err(|e| MappingError::new(&compiled.file, func, None, format!("result: {e}")))
    }

    /// Calls a hook that returns a plan: an array of `#{ method, path, query?, body? }`
    /// maps (see [`PlanStep`]). Runs for operations a profile scripts as a sequence of
    /// backend calls (e.g. deactivate-and-revoke on delete). A malformed plan is a script
    /// error naming the bad step.
    pub fn call_plan(
        &self,
        script: &str,
        func: &str,
        args: Vec<Value>,
    ) -> Result<Vec<PlanStep>, MappingError> {
        let value = self.call(script, func, args)?;
        self.counted(
            plan::parse_plan(value)
                .map_err(|e| MappingError::new(format!("{script}.rhai"), func, None, e)),
        )
    }

    /// The current compiled `script`, checked to define `func` with `arity` parameters so
    /// a missing function fails with a clear message instead of rhai's generic one.
    fn compiled(
        &self,
        script: &str,
        func: &str,
        arity: usize,
    ) -> Result<Arc<Compiled>, MappingError> {
        let scripts = self.scripts.load();
        let Some(compiled) = scripts.get(script) else {
            return Err(MappingError::new(
                format!("{script}.rhai"),
                func,
                None,
                format!("no script '{script}' in {}", self.dir.display()),
            ));
        };
        if !compiled.fns.get(func).is_some_and(|a| a.contains(&arity)) {
            return Err(MappingError::new(
                &compiled.file,
                func,
                None,
                format!("no function '{func}' taking {arity} parameter(s)"),
            ));
        }
        Ok(Arc::clone(compiled))
    }
}

/// How long a script call may run on the async worker that took the request. Nearly every
/// call ends far within it (a user mapping takes tens of microseconds); one that does not is
/// stopped and run again off the workers.
pub const INLINE_SLICE: Duration = Duration::from_millis(5);

fn is_timed_out(token: &Dynamic) -> bool {
    token
        .read_lock::<rhai::ImmutableString>()
        .is_some_and(|s| s.as_str() == engine::TIMED_OUT)
}

/// Runs a script call, `run(budget)`, so that a slow one does not hold up the async runtime.
/// On a worker of a multi-threaded tokio runtime the call first runs inline with
/// [`INLINE_SLICE`] as its budget. Only if it is still running then, it is stopped and run
/// once more from the start under `block_in_place` (the worker's other tasks move to another
/// thread) with the rest of its budget, so a runaway delays only its own request while every
/// other request and the probes are served. Running again is safe because scripts are pure:
/// they do no I/O and read lookups from a cache; at worst a `print` is logged twice.
/// Handing every call to `block_in_place` instead cost about 40 % of a GET's throughput (a
/// thread hand-off per call). Elsewhere (the CLI, single-threaded test runtimes) the call
/// runs as it is with the whole budget.
fn run_off_the_workers_if_slow(
    budget: Duration,
    run: impl Fn(Duration) -> Result<Dynamic, Box<EvalAltResult>>,
) -> Result<Dynamic, Box<EvalAltResult>> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let on_worker =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if !on_worker || budget <= INLINE_SLICE {
        return run(budget);
    }
    let started = Instant::now();
    match run(INLINE_SLICE) {
        Err(e) if matches!(&*e, EvalAltResult::ErrorTerminated(t, _) if is_timed_out(t)) => {
            let rest = budget.saturating_sub(started.elapsed());
            tokio::task::block_in_place(|| run(rest))
        }
        done => done,
    }
}

/// Compiles every `*.rhai` file of `dir`, in name order, collecting all errors.
fn compile_dir(dir: &Path) -> Result<HashMap<String, Arc<Compiled>>, Vec<MappingError>> {
    let dir_name = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|e| {
        vec![MappingError::new(
            &dir_name,
            "",
            None,
            format!("cannot read directory: {e}"),
        )]
    })?;
    let mut paths = Vec::new();
    let mut errors = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) if e.path().extension().is_some_and(|x| x == "rhai") => paths.push(e.path()),
            Ok(_) => {}
            Err(e) => errors.push(MappingError::new(
                &dir_name,
                "",
                None,
                format!("cannot list directory: {e}"),
            )),
        }
    }
    paths.sort();
    let mut scripts = HashMap::new();
    for path in paths {
        match compile_file(&path) {
            Ok((name, compiled)) => {
                scripts.insert(name, Arc::new(compiled));
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(scripts)
    } else {
        Err(errors)
    }
}

fn compile_file(path: &Path) -> Result<(String, Compiled), MappingError> {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let source = std::fs::read_to_string(path)
        .map_err(|e| MappingError::new(&file, "", None, format!("cannot read: {e}")))?;
    let mut ast = engine::with_engine(|engine| engine.compile(&source))
        .map_err(|e| MappingError::from_parse(&file, &e))?;
    ast.set_source(file.as_str());
    let native = served_natively(&source, &ast);
    if !native.is_empty() {
        ast.retain_functions(|_, _, name, arity| {
            !native.iter().any(|(n, a)| *n == name && *a == arity)
        });
    }
    let mut fns: HashMap<String, Vec<usize>> = HashMap::new();
    for f in ast.iter_functions() {
        fns.entry(f.name.to_string())
            .or_default()
            .push(f.params.len());
    }
    let program = compiled::Program::new(&ast);
    Ok((
        name,
        Compiled {
            file,
            ast,
            fns,
            program,
        },
    ))
}

/// Helpers every bundled profile defines in rhai, word for word, and the engine also provides
/// in Rust (`helpers.rs`): name, parameters, the definition with its whitespace collapsed.
/// They run for nearly every attribute of every mapping; as script functions they were most
/// of a user's mapping (13 `set_if` calls: 37 µs of rhai, 15 µs with the Rust one).
const INTRINSICS: [(&str, usize, &str); 2] = [
    ("present", 1, r#"fn present(v) { v != () && v != "" }"#),
    (
        "set_if",
        2,
        "fn set_if(key, value) { if present(value) { this[key] = value; } }",
    ),
];

/// Which of a script's functions are exactly an [`INTRINSICS`] definition, so its own copy
/// is dropped at load and its calls reach the Rust twin: same behaviour, no edit to the
/// script. A definition that differs in anything but whitespace (another parameter name, a
/// comment inside, other logic) stays the script's own. `set_if` counts only when the
/// script's `present` is the standard one too (it calls it).
fn served_natively(source: &str, ast: &AST) -> Vec<(&'static str, usize)> {
    let mut out: Vec<(&'static str, usize)> = Vec::new();
    for (name, arity, canonical) in INTRINSICS {
        let defined = ast
            .iter_functions()
            .filter(|f| f.name == name && f.params.len() == arity)
            .count();
        if defined != 1 || definition_text(source, name).as_deref() != Some(canonical) {
            continue;
        }
        let present_ok = name != "set_if"
            || out.contains(&("present", 1))
            || !ast.iter_functions().any(|f| f.name == "present");
        if present_ok {
            out.push((name, arity));
        }
    }
    out
}

/// The definition of `fn name(` in `source`, whitespace collapsed: from the one line that
/// starts with it (unindented; none or several: `None`) to where its braces balance.
fn definition_text(source: &str, name: &str) -> Option<String> {
    let head = format!("fn {name}(");
    let lines: Vec<&str> = source.lines().collect();
    let mut starts = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with(&head));
    let (start, _) = starts.next()?;
    if starts.next().is_some() {
        return None;
    }
    let mut depth = 0i32;
    let mut text = Vec::new();
    for line in &lines[start..] {
        text.push(*line);
        depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
        if depth == 0 && line.contains('}') {
            return Some(
                text.join(" ")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
    }
    None
}

#[cfg(test)]
mod tests;
