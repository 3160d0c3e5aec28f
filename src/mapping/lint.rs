//! Static checks of a profile's scripts that compiling alone does not make: calls to
//! functions nothing defines (a typo such as `user_typ(…)` compiles, and fails on the first
//! live request), and hooks declared with the wrong number of parameters (never called).
//! `scimgate check` runs them.

use super::{compile_dir, engine};
use rhai::ASTNode;
use rhai::Expr;
use std::collections::HashSet;
use std::path::Path;

/// Hooks the gateway calls, with the parameters it passes.
const HOOKS: [(&str, usize, &str); 5] = [
    ("on_deactivate", 2, "(user, ctx)"),
    ("on_reactivate", 2, "(user, ctx)"),
    ("on_delete", 2, "(resource, ctx)"),
    ("on_membership_change", 3, "(user, groups, ctx)"),
    ("on_group_delete", 3, "(group, members, ctx)"),
];

/// Names the parser turns into calls that are not registered functions.
const KEYWORDS: [&str; 9] = [
    "type_of",
    "print",
    "debug",
    "Fn",
    "call",
    "curry",
    "is_def_var",
    "is_def_fn",
    "is_shared",
];

/// Every problem found in the scripts of `dir`, one line each with file:line; compile
/// errors are reported elsewhere (`check_scripts`), so a file that does not compile is
/// skipped here.
pub fn lint_scripts(dir: &Path) -> Vec<String> {
    let Ok(scripts) = compile_dir(dir) else {
        return Vec::new();
    };
    let known: HashSet<String> = engine::with_engine(|e| {
        e.gen_fn_signatures(true)
            .into_iter()
            .filter_map(|sig| {
                let name = sig.split('(').next()?.trim();
                let name = name.rsplit("::").next().unwrap_or(name);
                Some(name.trim_start_matches("fn ").to_string())
            })
            .collect()
    });
    let mut names: Vec<&String> = scripts.keys().collect();
    names.sort();
    let mut problems = Vec::new();
    for name in names {
        let Some(c) = scripts.get(name) else {
            continue;
        };
        let file = dir.join(&c.file);
        let mut calls: Vec<(String, usize)> = Vec::new();
        c.ast.walk(&mut |path: &[ASTNode]| {
            // Plain calls only: a method call may be an object map's closure property
            // (`o.act(1)`), which no function list knows.
            if let Some(ASTNode::Expr(Expr::FnCall(x, pos))) = path.last()
                && x.op_token.is_none()
                && x.namespace.is_empty()
            {
                calls.push((x.name.to_string(), pos.line().unwrap_or(0)));
            }
            true
        });
        let mut seen = HashSet::new();
        for (call, line) in calls {
            let defined = c.fns.contains_key(&call)
                || known.contains(&call)
                || KEYWORDS.contains(&call.as_str())
                // Property access through getters and indexers is also a call underneath.
                || call.starts_with("get$")
                || call.starts_with("set$")
                || call.starts_with("index$");
            if !defined && seen.insert((call.clone(), line)) {
                problems.push(format!(
                    "{}:{line}: call to '{call}', which neither the script nor the gateway's \
                     helpers or rhai define (a typo?); it would fail on the first request \
                     that reaches it",
                    file.display()
                ));
            }
        }
        for (hook, arity, params) in HOOKS {
            if let Some(arities) = c.fns.get(hook)
                && !arities.contains(&arity)
            {
                problems.push(format!(
                    "{}: {hook} must take {params}; declared with {} parameter(s), it is \
                     never called",
                    file.display(),
                    arities
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" or ")
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(name: &str, script: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "scimgate-lint-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("user.rhai"), script).unwrap();
        dir
    }

    #[test]
    fn a_typo_in_a_call_is_found_with_its_line() {
        let dir = dir_with(
            "typo",
            "fn to_backend(user, ctx) {\n    let t = user_type(user.userType);\n    \
             #{ kind: user_typ(t), n: lower(trim(\"A\")), l: [1].len() }\n}\n\
             fn user_type(v) { v }\nfn from_backend(r, ctx) { type_of(r); r }\n",
        );
        let problems = lint_scripts(&dir);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("user.rhai:3") && problems[0].contains("'user_typ'"),
            "{problems:?}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn hooks_with_the_wrong_parameters_are_found() {
        let dir = dir_with(
            "arity",
            "fn to_backend(u, c) { u }\nfn from_backend(r, c) { r }\n\
             fn on_deactivate(user) { [] }\n",
        );
        let problems = lint_scripts(&dir);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("on_deactivate must take (user, ctx)"),
            "{problems:?}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_bundled_scripts_are_clean() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
        for e in std::fs::read_dir(root).unwrap() {
            let dir = e.unwrap().path();
            let problems = lint_scripts(&dir);
            assert!(problems.is_empty(), "{}: {problems:?}", dir.display());
        }
    }
}
