//! The sandboxed rhai engine, one per thread.
//!
//! Why per thread: one `Engine` shared by two threads measured ~31.6k calls/s, one per thread
//! 61.9k (DESIGN.md), and building one costs ~0.25 ms, paid once per thread on first use.
//! The engine holds no per-profile state: compiled scripts live in [`super::ScriptSet`] and
//! the lookup tables travel with each call as its tag, so every `ScriptSet` on a thread
//! shares that thread's engine and no engine ever serves a stale or foreign profile.

use rhai::module_resolvers::DummyModuleResolver;
use rhai::{Dynamic, Engine};
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Operations one call may run; stops runaway loops. A full user mapping takes a few
/// thousand, a 10,000-member group mapped in a loop about 100,000.
pub const MAX_OPERATIONS: u64 = 1_000_000;
/// Nested function calls; deep enough for helper functions, low enough to stop runaway
/// recursion before it exhausts a worker thread's stack (debug builds use far larger frames).
pub const MAX_CALL_LEVELS: usize = if cfg!(debug_assertions) { 12 } else { 48 };
/// Expression nesting at top level and inside functions (parse-time limit).
pub const MAX_EXPR_DEPTHS: (usize, usize) = if cfg!(debug_assertions) {
    (32, 24)
} else {
    (64, 48)
};
/// Longest string a script may build, in bytes.
pub const MAX_STRING_SIZE: usize = 1 << 20;
/// Largest array a script may build (group member lists are the big ones).
pub const MAX_ARRAY_SIZE: usize = 100_000;
/// Largest map a script may build.
pub const MAX_MAP_SIZE: usize = 10_000;

/// Default wall-clock budget of one script call ([`super::ScriptSet::with_time_budget`]).
pub const DEFAULT_TIME_BUDGET: Duration = Duration::from_secs(1);

/// Operations between two looks at the clock: often enough that a call stops within a few
/// milliseconds of its budget even when single operations are slow (growing a large array
/// re-measures it), rare enough to cost nothing measurable.
const CLOCK_EVERY_OPS: u64 = 64;

thread_local! {
    static ENGINE: Engine = build();
    /// When the call running on this thread must stop; `None` outside calls.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The value a call stopped by its time budget terminates with.
pub(crate) const TIMED_OUT: &str = "scimgate: time budget exceeded";

/// Runs `f` with this thread's engine under a wall-clock `budget`: a script still running
/// when it passes is stopped (`ErrorTerminated` carrying [`TIMED_OUT`]).
pub(crate) fn with_budget<R>(budget: Duration, f: impl FnOnce(&Engine) -> R) -> R {
    let previous = DEADLINE.with(|d| d.replace(Some(Instant::now() + budget)));
    let result = ENGINE.with(f);
    DEADLINE.with(|d| d.set(previous));
    result
}

/// Runs `f` with this thread's engine, building it on first use.
pub(crate) fn with_engine<R>(f: impl FnOnce(&Engine) -> R) -> R {
    ENGINE.with(f)
}

/// Builds the sandbox: the standard library (pure computation only: rhai has no file or
/// network functions), limits, no modules, no `eval`, helpers, and `print`/`debug` routed to
/// tracing instead of stdout.
fn build() -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(MAX_CALL_LEVELS)
        .set_max_expr_depths(MAX_EXPR_DEPTHS.0, MAX_EXPR_DEPTHS.1)
        .set_max_string_size(MAX_STRING_SIZE)
        .set_max_array_size(MAX_ARRAY_SIZE)
        .set_max_map_size(MAX_MAP_SIZE)
        // The default resolver reads files from disk; `import` is also refused at compile
        // time, the resolver is the second line.
        .set_module_resolver(DummyModuleResolver::new())
        .set_max_modules(0)
        // Undefined variables become compile errors at load time, which also catches the
        // classic mistake of reading a top-level constant inside a `fn`.
        .set_strict_variables(true)
        .on_progress(|ops| {
            if ops % CLOCK_EVERY_OPS != 0 {
                return None;
            }
            let passed = DEADLINE.with(|d| d.get().is_some_and(|at| Instant::now() >= at));
            passed.then(|| Dynamic::from(TIMED_OUT))
        })
        .on_print(|text| tracing::info!(target: "scimgate::script", "{text}"))
        .on_debug(|text, source, pos| {
            tracing::debug!(
                target: "scimgate::script",
                script = source.unwrap_or(""),
                line = pos.line(),
                "{text}"
            )
        });
    engine.disable_symbol("import");
    engine.disable_symbol("eval");
    super::helpers::register(&mut engine);
    engine
}
