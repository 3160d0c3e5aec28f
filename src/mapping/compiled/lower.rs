//! rhai's syntax tree → the compiled form [`super::eval`] runs: variables resolved to frame
//! slots, calls resolved to a script function or a built-in once, at load.
//!
//! Anything outside the supported part of the language is [`Unsupported`], and a function
//! that uses it (or calls one that does) stays rhai's: the choice is made per function at
//! load, never by guessing at run time.

use super::value::Cmp;
use rhai::{AST, ASTFlags, Dynamic, Expr as RExpr, FnCallExpr, Stmt as RStmt, StmtBlock};
use std::collections::HashMap;

/// Why a function is not compiled (shown by `scimgate check`, kept for tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unsupported(pub String);

type Lowered<T> = Result<T, Unsupported>;

fn unsupported<T>(what: impl Into<String>) -> Lowered<T> {
    Err(Unsupported(what.into()))
}

pub(super) type Block = Vec<Stmt>;

#[derive(Debug)]
pub(super) enum Stmt {
    Let(usize, Expr),
    Assign(Place, Expr),
    /// `place += value` / `place -= value`.
    OpAssign(Place, ArithOp, Expr),
    Expr(Expr),
    If(Expr, Block, Block),
    For {
        var: usize,
        counter: Option<usize>,
        iter: Iter,
        body: Block,
    },
    Break,
    Continue,
    Return(Expr),
    /// `try { … } catch { … }` without a catch variable.
    Try(Block, Block),
}

#[derive(Debug)]
pub(super) enum Iter {
    Items(Expr),
    Range(Expr, Expr, bool),
}

#[derive(Debug, Clone, Copy)]
pub(super) enum ArithOp {
    Add,
    Sub,
}

#[derive(Debug)]
pub(super) enum Expr {
    Const(Const),
    Local(usize),
    /// A value followed by `.prop`, `[index]` and `.method(…)` links.
    Chain(Box<Expr>, Vec<Link>),
    /// `place.method(…)` that changes the place (`push`, `remove`, `set_if`).
    MutCall(Place, Native, Vec<Expr>),
    Array(Vec<Expr>),
    Map(Vec<(String, Expr)>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Coalesce(Vec<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Eq(Box<Expr>, Box<Expr>, bool),
    Cmp(Box<Expr>, Box<Expr>, Cmp),
    Arith(Box<Expr>, Box<Expr>, ArithOp),
    Interp(Vec<Expr>),
    Call(usize, Vec<Expr>),
    Native(Native, Vec<Expr>),
    Block(Block),
}

#[derive(Debug)]
pub(super) enum Link {
    /// `.name` (`?.name` when the flag is set), and where the name was last found.
    Prop(String, bool, super::value::Hint),
    Index(Expr, bool),
    Method(Native, Vec<Expr>, bool),
}

/// Where an assignment or a changing method writes: a variable and a path inside it.
#[derive(Debug)]
pub(super) struct Place {
    pub slot: usize,
    pub path: Vec<Step>,
}

#[derive(Debug)]
pub(super) enum Step {
    Prop(String),
    Index(Expr),
}

/// A constant of the script (literals, and arrays or maps rhai folded into one value).
#[derive(Debug)]
pub(super) enum Const {
    Unit,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Const>),
    Map(Vec<(String, Const)>),
}

/// The built-in functions compiled scripts call: rhai's standard ones the mappings use and
/// the gateway's helpers (`helpers.rs`), each with the same result for the same arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Native {
    Present,
    Lower,
    Upper,
    Trim,
    TypeOf,
    ToString,
    Len,
    Keys,
    Contains,
    StartsWith,
    EndsWith,
    ParseInt,
    Lookup,
    Print,
    Fail,
    GetCi,
    Split,
    FlattenExtension,
    FromJson,
    // Methods that change their object.
    Push,
    Remove,
    SetIf,
}

impl Native {
    /// The built-in `name` taking `arity` arguments (the object counts for a method).
    fn find(name: &str, arity: usize) -> Option<Native> {
        Some(match (name, arity) {
            ("present", 1) => Native::Present,
            ("lower", 1) => Native::Lower,
            ("upper", 1) => Native::Upper,
            ("trim", 1) => Native::Trim,
            ("type_of", 1) => Native::TypeOf,
            ("to_string", 1) => Native::ToString,
            ("len", 1) => Native::Len,
            ("keys", 1) => Native::Keys,
            ("contains", 2) => Native::Contains,
            ("starts_with", 2) => Native::StartsWith,
            ("ends_with", 2) => Native::EndsWith,
            ("parse_int", 1) => Native::ParseInt,
            ("lookup", 2) => Native::Lookup,
            ("print", 1) => Native::Print,
            ("fail", 2) => Native::Fail,
            ("get_ci", 2) => Native::GetCi,
            ("split", 2) => Native::Split,
            ("flatten_extension", 2) => Native::FlattenExtension,
            ("from_json", 1) => Native::FromJson,
            ("push", 2) => Native::Push,
            ("remove", 2) => Native::Remove,
            ("set_if", 3) => Native::SetIf,
            _ => return None,
        })
    }

    fn changes_object(self) -> bool {
        matches!(self, Native::Push | Native::Remove | Native::SetIf)
    }
}

/// One compiled function.
#[derive(Debug)]
pub(super) struct FnDef {
    pub name: String,
    pub params: usize,
    /// Frame size: parameters and every `let` and loop variable.
    pub slots: usize,
    pub body: Block,
    /// Script functions this one calls, by index.
    pub calls: Vec<usize>,
    /// Which parameters the body names: one it never names cannot change the result, so
    /// a caller may pass `()` for it instead of building it ([`super::Program::reads_param`]).
    pub reads: Vec<bool>,
}

/// Lowers every function of `ast`: each compiled, or the reason it is not.
pub(super) fn lower_ast(ast: &AST) -> Vec<(String, usize, Lowered<FnDef>)> {
    // Function bodies are not public in rhai's API; the walk visits them, in the order of
    // `iter_fn_def`, after the top-level statements. Each function's statements are the
    // walk's top-level nodes that lie within its body's span.
    let mut tops: Vec<RStmt> = Vec::new();
    ast.walk(&mut |path: &[rhai::ASTNode]| {
        if let [rhai::ASTNode::Stmt(s)] = path {
            tops.push((*s).clone());
        }
        true
    });
    let defs: Vec<_> = ast.iter_fn_def().collect();
    // Every statement must be placed by its position; one without cannot be, so nothing
    // of this script is compiled rather than a function compiled without it.
    if tops.iter().any(|s| s.position().is_none()) {
        return defs
            .iter()
            .map(|f| {
                let why = unsupported("a statement without a source position");
                (f.name.to_string(), f.params.len(), why)
            })
            .collect();
    }
    let index: HashMap<(String, usize), usize> = defs
        .iter()
        .enumerate()
        .map(|(i, f)| ((f.name.to_string(), f.params.len()), i))
        .collect();
    let names: HashMap<String, Vec<usize>> = defs.iter().fold(HashMap::new(), |mut m, f| {
        m.entry(f.name.to_string())
            .or_default()
            .push(f.params.len());
        m
    });
    defs.iter()
        .map(|f| {
            let (start, end) = (f.body.start_position(), f.body.end_position());
            let within = |s: &&RStmt| {
                let p = s.position();
                !p.is_none() && !start.is_none() && p >= start && (end.is_none() || p <= end)
            };
            let body: Vec<&RStmt> = tops.iter().filter(within).collect();
            // A closure's body is a function of its own (even one the optimiser dropped
            // from the code), lying within this one's span: its statements would be taken
            // for this function's.
            let holds_another = defs.iter().any(|g| {
                let p = g.body.start_position();
                !std::ptr::eq(*g, *f)
                    && !p.is_none()
                    && !start.is_none()
                    && p > start
                    && (end.is_none() || p <= end)
            });
            let lowered = if f.this_type.is_some() {
                unsupported("a method with a `this` type")
            } else if holds_another {
                unsupported("a closure")
            } else {
                let mut cx = Lowering {
                    index: &index,
                    names: &names,
                    slots: f.params.len(),
                    calls: Vec::new(),
                    consts: Vec::new(),
                    reads: vec![false; f.params.len()],
                };
                cx.body(&f.params, &body).map(|body| FnDef {
                    name: f.name.to_string(),
                    params: f.params.len(),
                    slots: cx.slots,
                    body,
                    calls: cx.calls,
                    reads: cx.reads,
                })
            };
            (f.name.to_string(), f.params.len(), lowered)
        })
        .collect()
}

struct Lowering<'x> {
    index: &'x HashMap<(String, usize), usize>,
    names: &'x HashMap<String, Vec<usize>>,
    /// Frame slots handed out so far (the parameters are the first).
    slots: usize,
    calls: Vec<usize>,
    /// Slots of `const` variables: rhai refuses to change them (an assignment, `+=` or a
    /// changing method on one is its runtime error), so code that does is left to rhai.
    consts: Vec<usize>,
    /// Per parameter, whether a variable lookup found it.
    reads: Vec<bool>,
}

impl Lowering<'_> {
    /// A function's statements; `params` are its parameters, in slots 0..n. The scope is
    /// the visible variables with their slots, innermost last.
    fn body(&mut self, params: &[rhai::ImmutableString], stmts: &[&RStmt]) -> Lowered<Block> {
        let mut scope: Vec<(String, usize)> = params
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), i))
            .collect();
        let mut out = Vec::with_capacity(stmts.len());
        for s in stmts {
            out.push(self.stmt(s, &mut scope)?);
        }
        Ok(out)
    }

    /// The slot of the variable `name`, noting a parameter as read. Every use of a
    /// variable by name (a read, an assignment, a changing method, an interpolation) finds
    /// its slot here.
    fn var(&mut self, scope: &[(String, usize)], name: &str) -> Lowered<usize> {
        let slot = lookup_var(scope, name)?;
        if let Some(read) = self.reads.get_mut(slot) {
            *read = true;
        }
        Ok(slot)
    }

    fn block(&mut self, block: &StmtBlock, scope: &mut Vec<(String, usize)>) -> Lowered<Block> {
        let depth = scope.len();
        let mut out = Vec::with_capacity(block.statements().len());
        for s in block.statements() {
            out.push(self.stmt(s, scope)?);
        }
        scope.truncate(depth);
        Ok(out)
    }

    fn new_slot(&mut self, name: &str, scope: &mut Vec<(String, usize)>) -> usize {
        let slot = self.slots;
        self.slots += 1;
        scope.push((name.to_string(), slot));
        slot
    }

    fn stmt(&mut self, s: &RStmt, scope: &mut Vec<(String, usize)>) -> Lowered<Stmt> {
        Ok(match s {
            RStmt::Noop(_) => Stmt::Expr(Expr::Const(Const::Unit)),
            RStmt::Var(x, flags, _) => {
                let value = self.expr(&x.1, scope)?;
                let slot = self.new_slot(&x.0.name, scope);
                if flags.intersects(ASTFlags::CONSTANT) {
                    self.consts.push(slot);
                }
                Stmt::Let(slot, value)
            }
            RStmt::Assignment(x) => {
                let (op, bin) = &**x;
                let value = self.expr(&bin.rhs, scope)?;
                let place = self.place(&bin.lhs, scope)?;
                match op.get_op_assignment_info() {
                    None => Stmt::Assign(place, value),
                    Some((.., "+")) => Stmt::OpAssign(place, ArithOp::Add, value),
                    Some((.., "-")) => Stmt::OpAssign(place, ArithOp::Sub, value),
                    Some((.., other)) => return unsupported(format!("the operator {other}=")),
                }
            }
            RStmt::If(x, _) => Stmt::If(
                self.expr(&x.expr, scope)?,
                self.block(&x.body, scope)?,
                self.block(&x.branch, scope)?,
            ),
            RStmt::For(x, _) => {
                let (var, counter, flow) = &**x;
                let iter = match &flow.expr {
                    RExpr::FnCall(f, _)
                        if f.is_operator_call() && (f.name == ".." || f.name == "..=") =>
                    {
                        let [a, b] = f.args.as_slice() else {
                            return unsupported("a range without two ends");
                        };
                        Iter::Range(self.expr(a, scope)?, self.expr(b, scope)?, f.name == "..=")
                    }
                    // A range of two literals, folded by rhai into one constant.
                    RExpr::DynamicConstant(d, _) if range(d).is_some() => {
                        let Some((from, to, inclusive)) = range(d) else {
                            return unsupported("this range");
                        };
                        let int = |i| Expr::Const(Const::Int(i));
                        Iter::Range(int(from), int(to), inclusive)
                    }
                    other => Iter::Items(self.expr(other, scope)?),
                };
                let depth = scope.len();
                let var = self.new_slot(&var.name, scope);
                let counter = counter.as_ref().map(|c| self.new_slot(&c.name, scope));
                let body = self.block(&flow.body, scope)?;
                scope.truncate(depth);
                Stmt::For {
                    var,
                    counter,
                    iter,
                    body,
                }
            }
            RStmt::FnCall(f, _) => Stmt::Expr(self.call(f, scope)?),
            RStmt::Block(b) => Stmt::Expr(Expr::Block(self.block(b, scope)?)),
            RStmt::TryCatch(x, _) => {
                if !matches!(x.expr, RExpr::Unit(_)) {
                    return unsupported("a catch variable");
                }
                Stmt::Try(self.block(&x.body, scope)?, self.block(&x.branch, scope)?)
            }
            RStmt::Expr(e) => Stmt::Expr(self.expr(e, scope)?),
            RStmt::BreakLoop(value, flags, _) => {
                if value.is_some() {
                    return unsupported("break with a value");
                }
                if flags.intersects(ASTFlags::BREAK) {
                    Stmt::Break
                } else {
                    Stmt::Continue
                }
            }
            RStmt::Return(value, flags, _) => {
                if flags.intersects(ASTFlags::BREAK) {
                    return unsupported("throw");
                }
                Stmt::Return(match value {
                    Some(e) => self.expr(e, scope)?,
                    None => Expr::Const(Const::Unit),
                })
            }
            RStmt::While(..) => return unsupported("while/loop"),
            RStmt::Do(..) => return unsupported("do"),
            RStmt::Switch(..) => return unsupported("switch"),
            _ => return unsupported("this statement"),
        })
    }

    fn expr(&mut self, e: &RExpr, scope: &mut Vec<(String, usize)>) -> Lowered<Expr> {
        Ok(match e {
            RExpr::Unit(_) => Expr::Const(Const::Unit),
            RExpr::BoolConstant(b, _) => Expr::Const(Const::Bool(*b)),
            RExpr::IntegerConstant(i, _) => Expr::Const(Const::Int(*i)),
            RExpr::FloatConstant(f, _) => Expr::Const(Const::Float(**f)),
            RExpr::StringConstant(s, _) => Expr::Const(Const::Str(s.to_string())),
            RExpr::DynamicConstant(d, _) => Expr::Const(constant(d)?),
            RExpr::InterpolatedString(parts, _) => Expr::Interp(
                parts
                    .iter()
                    .map(|p| self.expr(p, scope))
                    .collect::<Lowered<_>>()?,
            ),
            RExpr::Array(items, _) => Expr::Array(
                items
                    .iter()
                    .map(|p| self.expr(p, scope))
                    .collect::<Lowered<_>>()?,
            ),
            RExpr::Map(x, _) => Expr::Map(
                x.0.iter()
                    .map(|(k, v)| Ok((k.name.to_string(), self.expr(v, scope)?)))
                    .collect::<Lowered<_>>()?,
            ),
            RExpr::Variable(x, _, _) => {
                if !x.2.is_empty() {
                    return unsupported("a namespaced variable");
                }
                Expr::Local(self.var(scope, &x.1)?)
            }
            RExpr::Stmt(b) => Expr::Block(self.block(b, scope)?),
            RExpr::FnCall(f, _) => self.call(f, scope)?,
            RExpr::Dot(..) | RExpr::Index(..) => self.chain(e, scope)?,
            RExpr::And(items, _) => Expr::And(self.list(items, scope)?),
            RExpr::Or(items, _) => Expr::Or(self.list(items, scope)?),
            RExpr::Coalesce(items, _) => Expr::Coalesce(self.list(items, scope)?),
            RExpr::ThisPtr(_) => return unsupported("this"),
            RExpr::CharConstant(..) => return unsupported("a character literal"),
            _ => return unsupported("this expression"),
        })
    }

    fn list(&mut self, items: &[RExpr], scope: &mut Vec<(String, usize)>) -> Lowered<Vec<Expr>> {
        items.iter().map(|e| self.expr(e, scope)).collect()
    }

    fn call(&mut self, f: &FnCallExpr, scope: &mut Vec<(String, usize)>) -> Lowered<Expr> {
        if !f.namespace.is_empty() || f.capture_parent_scope {
            return unsupported(format!("the call {}", f.name));
        }
        let args = self.list(&f.args, scope)?;
        if f.is_operator_call() {
            return operator(&f.name, args);
        }
        if let Some(&i) = self.index.get(&(f.name.to_string(), args.len())) {
            self.calls.push(i);
            return Ok(Expr::Call(i, args));
        }
        match Native::find(&f.name, args.len()) {
            // Changing built-ins called as functions are left to rhai (whether the first
            // argument is changed then is rhai's own rule).
            Some(n) if !n.changes_object() => Ok(Expr::Native(n, args)),
            _ => unsupported(format!("the function {}/{}", f.name, f.args.len())),
        }
    }

    /// `a.b?.c[i].m(x)` and `a[i]…`: the first value, then its links.
    fn chain(&mut self, e: &RExpr, scope: &mut Vec<(String, usize)>) -> Lowered<Expr> {
        let (base, mut links) = match e {
            RExpr::Dot(x, flags, _) => {
                let base = self.expr(&x.lhs, scope)?;
                let mut links = Vec::new();
                self.dot_links(&x.rhs, negated(*flags), scope, &mut links)?;
                (base, links)
            }
            RExpr::Index(x, flags, _) => {
                let base = self.expr(&x.lhs, scope)?;
                let mut links = Vec::new();
                self.index_links(&x.rhs, *flags, scope, &mut links)?;
                (base, links)
            }
            _ => return unsupported("this chain"),
        };
        // Arguments and indices are evaluated before the chain is walked, which is the
        // same only if none of them can change a variable.
        if links.iter().any(|l| match l {
            Link::Prop(..) => false,
            Link::Index(e, _) => changes_variables(e),
            Link::Method(_, args, _) => args.iter().any(changes_variables),
        }) {
            return unsupported("a chain whose arguments change variables");
        }
        // `x.path.push(v)` changes `x`.
        if let (Expr::Local(slot), Some(Link::Method(n, _, false))) = (&base, links.last())
            && n.changes_object()
        {
            let slot = *slot;
            if self.consts.contains(&slot) {
                return unsupported("a changing method on a constant");
            }
            let Some(Link::Method(n, args, _)) = links.pop() else {
                return unsupported("this chain");
            };
            let path = links
                .into_iter()
                .map(|l| match l {
                    Link::Prop(p, false, _) => Ok(Step::Prop(p)),
                    Link::Index(i, false) => Ok(Step::Index(i)),
                    _ => unsupported("a changing method after ?. or a method"),
                })
                .collect::<Lowered<_>>()?;
            return Ok(Expr::MutCall(Place { slot, path }, n, args));
        }
        Ok(Expr::Chain(Box::new(base), links))
    }

    fn dot_links(
        &mut self,
        e: &RExpr,
        elvis: bool,
        scope: &mut Vec<(String, usize)>,
        out: &mut Vec<Link>,
    ) -> Lowered<()> {
        match e {
            RExpr::Property(x, _) => {
                out.push(Link::Prop(x.2.to_string(), elvis, Default::default()))
            }
            RExpr::MethodCall(f, _) => {
                if !f.namespace.is_empty() {
                    return unsupported("a namespaced method");
                }
                let n = f.args.len();
                let by_script = self
                    .names
                    .get(f.name.as_str())
                    .is_some_and(|arities| arities.contains(&n) || arities.contains(&(n + 1)));
                if by_script {
                    return unsupported(format!("the script method {}", f.name));
                }
                let Some(native) = Native::find(&f.name, n + 1) else {
                    return unsupported(format!("the method {}/{}", f.name, n));
                };
                // In a chain, a method takes one argument at most (the changing ones, with
                // more, are handled on a variable by `MutCall`).
                if n > 1 && !native.changes_object() {
                    return unsupported(format!("the method {}/{}", f.name, n));
                }
                let args = self.list(&f.args, scope)?;
                out.push(Link::Method(native, args, elvis));
            }
            RExpr::Dot(x, flags, _) => {
                self.dot_links(&x.lhs, elvis, scope, out)?;
                self.dot_links(&x.rhs, negated(*flags), scope, out)?;
            }
            RExpr::Index(x, flags, _) => {
                self.dot_links(&x.lhs, elvis, scope, out)?;
                self.index_links(&x.rhs, *flags, scope, out)?;
            }
            _ => return unsupported("this link"),
        }
        Ok(())
    }

    /// The links after `[`: with BREAK the whole `e` is the index; otherwise `e` is a chain
    /// whose first element is the index.
    fn index_links(
        &mut self,
        e: &RExpr,
        flags: ASTFlags,
        scope: &mut Vec<(String, usize)>,
        out: &mut Vec<Link>,
    ) -> Lowered<()> {
        let elvis = negated(flags);
        if flags.intersects(ASTFlags::BREAK) {
            out.push(Link::Index(self.expr(e, scope)?, elvis));
            return Ok(());
        }
        match e {
            RExpr::Dot(x, f, _) => {
                out.push(Link::Index(self.expr(&x.lhs, scope)?, elvis));
                self.dot_links(&x.rhs, negated(*f), scope, out)
            }
            RExpr::Index(x, f, _) => {
                out.push(Link::Index(self.expr(&x.lhs, scope)?, elvis));
                self.index_links(&x.rhs, *f, scope, out)
            }
            _ => unsupported("this index"),
        }
    }

    fn place(&mut self, e: &RExpr, scope: &mut Vec<(String, usize)>) -> Lowered<Place> {
        if let RExpr::Variable(x, _, _) = e {
            if !x.2.is_empty() {
                return unsupported("a namespaced variable");
            }
            let slot = self.var(scope, &x.1)?;
            if self.consts.contains(&slot) {
                return unsupported("an assignment to a constant");
            }
            return Ok(Place {
                slot,
                path: Vec::new(),
            });
        }
        let Expr::Chain(base, links) = self.chain(e, scope)? else {
            return unsupported("this assignment target");
        };
        let Expr::Local(slot) = *base else {
            return unsupported("an assignment to a value that is no variable");
        };
        if self.consts.contains(&slot) {
            return unsupported("an assignment to a constant");
        }
        let path = links
            .into_iter()
            .map(|l| match l {
                Link::Prop(p, false, _) => Ok(Step::Prop(p)),
                Link::Index(i, false) => Ok(Step::Index(i)),
                _ => unsupported("this assignment target"),
            })
            .collect::<Lowered<_>>()?;
        Ok(Place { slot, path })
    }
}

fn negated(flags: ASTFlags) -> bool {
    flags.intersects(ASTFlags::NEGATED)
}

fn lookup_var(scope: &[(String, usize)], name: &str) -> Lowered<usize> {
    match scope.iter().rev().find(|(n, _)| n == name) {
        Some((_, slot)) => Ok(*slot),
        None => unsupported(format!("the variable {name}")),
    }
}

/// Whether evaluating `e` may change a variable of the frame (an assignment inside a block
/// expression, or a changing method).
fn changes_variables(e: &Expr) -> bool {
    match e {
        Expr::Const(_) | Expr::Local(_) => false,
        Expr::MutCall(..) | Expr::Block(_) => true,
        Expr::Chain(base, links) => {
            changes_variables(base)
                || links.iter().any(|l| match l {
                    Link::Prop(..) => false,
                    Link::Index(e, _) => changes_variables(e),
                    Link::Method(_, args, _) => args.iter().any(changes_variables),
                })
        }
        Expr::Array(items)
        | Expr::And(items)
        | Expr::Or(items)
        | Expr::Coalesce(items)
        | Expr::Interp(items)
        | Expr::Call(_, items)
        | Expr::Native(_, items) => items.iter().any(changes_variables),
        Expr::Map(items) => items.iter().any(|(_, e)| changes_variables(e)),
        Expr::Not(e) | Expr::Neg(e) => changes_variables(e),
        Expr::Eq(a, b, _) | Expr::Cmp(a, b, _) | Expr::Arith(a, b, _) => {
            changes_variables(a) || changes_variables(b)
        }
    }
}

fn operator(name: &str, args: Vec<Expr>) -> Lowered<Expr> {
    let mut it = args.into_iter();
    let b = Box::new;
    Ok(match (name, it.next(), it.next(), it.next()) {
        ("==", Some(x), Some(y), None) => Expr::Eq(b(x), b(y), true),
        ("!=", Some(x), Some(y), None) => Expr::Eq(b(x), b(y), false),
        ("<", Some(x), Some(y), None) => Expr::Cmp(b(x), b(y), Cmp::Lt),
        ("<=", Some(x), Some(y), None) => Expr::Cmp(b(x), b(y), Cmp::Le),
        (">", Some(x), Some(y), None) => Expr::Cmp(b(x), b(y), Cmp::Gt),
        (">=", Some(x), Some(y), None) => Expr::Cmp(b(x), b(y), Cmp::Ge),
        ("+", Some(x), Some(y), None) => Expr::Arith(b(x), b(y), ArithOp::Add),
        ("-", Some(x), Some(y), None) => Expr::Arith(b(x), b(y), ArithOp::Sub),
        ("-", Some(x), None, None) => Expr::Neg(b(x)),
        ("!", Some(x), None, None) => Expr::Not(b(x)),
        (other, ..) => return unsupported(format!("the operator {other}")),
    })
}

/// The ends of a constant integer range, and whether it includes its end.
fn range(d: &Dynamic) -> Option<(i64, i64, bool)> {
    if let Some(r) = d.clone().try_cast::<std::ops::Range<i64>>() {
        return Some((r.start, r.end, false));
    }
    d.clone()
        .try_cast::<std::ops::RangeInclusive<i64>>()
        .map(|r| (*r.start(), *r.end(), true))
}

/// A constant rhai folded (arrays and maps of literals).
fn constant(d: &Dynamic) -> Lowered<Const> {
    if d.is_unit() {
        return Ok(Const::Unit);
    }
    if let Ok(b) = d.as_bool() {
        return Ok(Const::Bool(b));
    }
    if let Ok(i) = d.as_int() {
        return Ok(Const::Int(i));
    }
    if let Ok(f) = d.as_float() {
        return Ok(Const::Float(f));
    }
    if d.is_string() {
        return Ok(Const::Str(d.to_string()));
    }
    if d.is_array() {
        let items = d
            .clone()
            .into_array()
            .map_err(|t| Unsupported(format!("a constant of type {t}")))?;
        return items
            .iter()
            .map(constant)
            .collect::<Lowered<_>>()
            .map(Const::Array);
    }
    if d.is_map()
        && let Some(map) = d.clone().try_cast::<rhai::Map>()
    {
        return map
            .iter()
            .map(|(k, v)| Ok((k.to_string(), constant(v)?)))
            .collect::<Lowered<_>>()
            .map(Const::Map);
    }
    unsupported(format!("a constant of type {}", d.type_name()))
}
