//! Data-driven parser tests: `check(input, expect)` prints the AST in a compact outline and
//! compares it with the expected text; `check_expr` prints one fully parenthesised
//! expression; `check_error` asserts a diagnostic's code and words.

use super::*;
use std::fmt::Write as _;

const FILE: FileId = FileId(0);

fn parse_ok(text: &str) -> File {
    match parse(text, FILE) {
        Ok(f) => f,
        Err(d) => panic!("unexpected errors for {:?}:\n{:#?}", short(text), d.0),
    }
}

/// Parses `input` and compares its outline with `expect` (indentation-insensitive at the
/// ends: both are trimmed).
fn check(input: &str, expect: &str) {
    let file = parse_ok(input);
    let mut out = String::new();
    for item in &file.items {
        print_item(&mut out, item);
    }
    assert_eq!(out.trim_end(), dedent(expect).trim_end(), "input:\n{input}");
}

/// Removes the blank lines around `text` and the indentation common to its lines.
fn dedent(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let indent = lines
        .iter()
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| format!("{}\n", &l[indent..]))
        .collect()
}

fn check_expr(input: &str, expect: &str) {
    let text = format!("model M(input: [{input}]) {{}}");
    let file = parse_ok(&text);
    let Item::Model(m) = &file.items[0] else {
        panic!("not a model")
    };
    assert_eq!(m.input.len(), 1, "{input}");
    assert_eq!(expr_str(&m.input[0]), expect, "input: {input}");
}

/// Asserts that `input` fails with a diagnostic of `code` whose message contains each of
/// `words`; returns it for further checks.
fn check_error(input: &str, code: &str, words: &[&str]) -> Diagnostic {
    let diags = match parse(input, FILE) {
        Ok(_) => panic!("expected an error for {:?}", short(input)),
        Err(d) => d,
    };
    assert!(diags.has_errors());
    let d = diags
        .iter()
        .find(|d| d.code == code)
        .unwrap_or_else(|| panic!("no {code} for {:?}: {:#?}", short(input), diags.0))
        .clone();
    let all = format!("{} {}", d.message, d.help.clone().unwrap_or_default());
    for w in words {
        assert!(
            all.contains(w),
            "{w:?} not in {all:?} (input {:?})",
            short(input)
        );
    }
    assert!(!d.labels.is_empty(), "no label: {d:#?}");
    let raw = ["stmt", "expr", "ident", "rbrace", "lbrace", "EOI", "call"];
    for word in d
        .message
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
    {
        assert!(
            !raw.contains(&word) && !word.starts_with("kw_") && !word.ends_with("_op"),
            "raw rule name {word:?} in {:?}",
            d.message
        );
    }
    d
}

/// The start of a long test input, for failure messages.
fn short(text: &str) -> &str {
    let end = (0..=200.min(text.len()))
        .rev()
        .find(|&i| text.is_char_boundary(i));
    &text[..end.unwrap_or(0)]
}

fn slice(text: &str, span: Span) -> &str {
    &text[span.start as usize..span.end as usize]
}

// ---- the outline printer -----------------------------------------------------------------

fn print_item(out: &mut String, item: &Item) {
    match item {
        Item::Use(u) => writeln!(out, "use {:?}", u.path).unwrap(),
        Item::Block(b) => {
            let params: Vec<String> = b
                .params
                .iter()
                .map(|p| match &p.default {
                    Some(d) => format!("{}={}", p.name.name, expr_str(d)),
                    None => p.name.name.clone(),
                })
                .collect();
            writeln!(out, "block {}({})", b.name.name, params.join(", ")).unwrap();
            print_body(out, &b.body, 1);
        }
        Item::Model(m) => {
            writeln!(out, "model {} {}", m.name.name, list_str(&m.input)).unwrap();
            print_body(out, &m.body, 1);
        }
    }
}

fn print_body(out: &mut String, body: &[Stmt], depth: usize) {
    for s in body {
        print_stmt(out, s, depth);
    }
}

fn print_stmt(out: &mut String, s: &Stmt, depth: usize) {
    let pad = "  ".repeat(depth);
    let mut post = String::new();
    if let Some(a) = &s.alias {
        write!(post, " as {}", a.name).unwrap();
    }
    if let Some(a) = &s.assert {
        write!(post, " : {}", list_str(&a.dims)).unwrap();
    }
    match &s.kind {
        StmtKind::Call(c) => {
            let args: Vec<String> = c
                .args
                .iter()
                .map(|a| match &a.name {
                    Some(n) => format!("{}={}", n.name, expr_str(&a.value)),
                    None => expr_str(&a.value),
                })
                .collect();
            if c.parens {
                writeln!(out, "{pad}{}({}){post}", c.name.name, args.join(", ")).unwrap();
            } else {
                writeln!(out, "{pad}{}{post}", c.name.name).unwrap();
            }
        }
        StmtKind::Repeat(r) => {
            let head = match (&r.var, &r.range) {
                (None, RepeatRange::Count(n)) => format!("repeat {}", expr_str(n)),
                (Some(v), RepeatRange::Each(list)) => {
                    format!("repeat {} in {}", v.name, expr_str(list))
                }
                (Some(v), RepeatRange::Range(a, b)) => {
                    format!("repeat {} in {}..{}", v.name, expr_str(a), expr_str(b))
                }
                (v, r) => panic!("odd repeat {v:?} {r:?}"),
            };
            writeln!(out, "{pad}{head}{post}").unwrap();
            print_body(out, &r.body, depth + 1);
        }
        StmtKind::If(i) => print_if(out, i, depth, &post),
        StmtKind::Concat(c) => {
            writeln!(out, "{pad}concat{post}").unwrap();
            for b in &c.branches {
                if b.body.is_empty() {
                    writeln!(out, "{pad}  branch {{}}").unwrap();
                } else {
                    writeln!(out, "{pad}  branch").unwrap();
                    print_body(out, &b.body, depth + 2);
                }
            }
        }
        StmtKind::Residual(r) => {
            match &r.cond {
                Some(c) => writeln!(out, "{pad}residual if {}{post}", expr_str(c)).unwrap(),
                None => writeln!(out, "{pad}residual{post}").unwrap(),
            }
            print_body(out, &r.body, depth + 1);
            if let Some(s) = &r.shortcut {
                match &s.cond {
                    Some(c) => writeln!(out, "{pad}shortcut if {}", expr_str(c)).unwrap(),
                    None => writeln!(out, "{pad}shortcut").unwrap(),
                }
                print_body(out, &s.body, depth + 1);
            }
        }
        StmtKind::Gate(g) => {
            writeln!(out, "{pad}gate{post}").unwrap();
            print_body(out, &g.body, depth + 1);
        }
        StmtKind::Output(o) => {
            writeln!(out, "{pad}output {}{post}", o.name.name).unwrap();
            print_body(out, &o.body, depth + 1);
        }
    }
}

fn print_if(out: &mut String, i: &IfStmt, depth: usize, post: &str) {
    let pad = "  ".repeat(depth);
    writeln!(out, "{pad}if {}{post}", expr_str(&i.cond)).unwrap();
    print_body(out, &i.then_body, depth + 1);
    if let Some(e) = &i.else_body {
        writeln!(out, "{pad}else").unwrap();
        print_body(out, e, depth + 1);
    }
}

fn list_str(items: &[Expr]) -> String {
    let items: Vec<String> = items.iter().map(expr_str).collect();
    format!("[{}]", items.join(", "))
}

fn expr_str(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Int(v) => v.to_string(),
        ExprKind::Float(v) => format!("{v:?}"),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Same => "same".into(),
        ExprKind::Var(v) => v.clone(),
        ExprKind::InQuery(q) => format!("in.{q}"),
        ExprKind::TensorQuery(name, q) => format!("{name}.{q}"),
        ExprKind::List(items) => list_str(items),
        ExprKind::Index(a, i) => format!("{}[{}]", expr_str(a), expr_str(i)),
        ExprKind::Unary(UnaryOp::Neg, a) => format!("(-{})", expr_str(a)),
        ExprKind::Unary(UnaryOp::Not, a) => format!("(not {})", expr_str(a)),
        ExprKind::Binary(op, a, b) => {
            format!("({} {} {})", expr_str(a), op.symbol(), expr_str(b))
        }
        ExprKind::Call(f, _, args) => {
            let args: Vec<String> = args.iter().map(expr_str).collect();
            format!("{f}({})", args.join(", "))
        }
    }
}

// ---- constructs --------------------------------------------------------------------------

#[test]
fn empty_and_comment_only_files() {
    check("", "");
    check("  \n\t\n", "");
    check("# only a comment\n// and another", "");
    check("# no newline at the end", "");
    check("\u{feff}block b() {}", "block b()");
}

#[test]
fn use_declarations() {
    check(
        r#"use "blocks/common.cnn"  use "x.cnn""#,
        r#"
        use "blocks/common.cnn"
        use "x.cnn"
        "#,
    );
}

#[test]
fn lenet() {
    check(
        "# LeNet (seeds 000/001): sigmoid, average pooling, padding 2 on the first conv
model LeNet(input: [1, 28, 28]) {
    conv(6, 5, pad=2) sigmoid
    avgpool(2, stride=2)
    conv(16, 5) sigmoid
    avgpool(2, stride=2)
    flatten            : [400]      # an optional shape assertion, checked
    linear(120) sigmoid
    linear(84) sigmoid
    linear(10)
}",
        "
        model LeNet [1, 28, 28]
          conv(6, 5, pad=2)
          sigmoid
          avgpool(2, stride=2)
          conv(16, 5)
          sigmoid
          avgpool(2, stride=2)
          flatten : [400]
          linear(120)
          sigmoid
          linear(84)
          sigmoid
          linear(10)
        ",
    );
}

#[test]
fn vgg_block() {
    check(
        "block vgg_block(convs, channels) {
            repeat convs { conv(channels, 3, pad=1) relu }
            maxpool(2, stride=2)
        }",
        "
        block vgg_block(convs, channels)
          repeat convs
            conv(channels, 3, pad=1)
            relu
          maxpool(2, stride=2)
        ",
    );
}

#[test]
fn inception() {
    check(
        "block inception(c1, c2, c3, c4) {
            concat {
                { conv(c1, 1) relu }
                { conv(c2[0], 1) relu conv(c2[1], 3, pad=1) relu }
                { conv(c3[0], 1) relu conv(c3[1], 5, pad=2) relu }
                { maxpool(3, stride=1, pad=1) conv(c4, 1) relu }
            }
        }",
        "
        block inception(c1, c2, c3, c4)
          concat
            branch
              conv(c1, 1)
              relu
            branch
              conv(c2[0], 1)
              relu
              conv(c2[1], 3, pad=1)
              relu
            branch
              conv(c3[0], 1)
              relu
              conv(c3[1], 5, pad=2)
              relu
            branch
              maxpool(3, stride=1, pad=1)
              conv(c4, 1)
              relu
        ",
    );
}

#[test]
fn residual_unit() {
    check(
        "block residual_unit(channels, stride=1) {
            residual {
                conv(channels, 3, pad=1, stride=stride) batchnorm relu
                conv(channels, 3, pad=1) batchnorm
            } shortcut if stride != 1 or in.c != channels {
                conv(channels, 1, stride=stride)
            }
            relu
        }",
        "
        block residual_unit(channels, stride=1)
          residual
            conv(channels, 3, pad=1, stride=stride)
            batchnorm
            relu
            conv(channels, 3, pad=1)
            batchnorm
          shortcut if ((stride != 1) or (in.c != channels))
            conv(channels, 1, stride=stride)
          relu
        ",
    );
}

#[test]
fn conditional_residual_and_function_calls() {
    check(
        "block inverted(out, t, stride=1) {
            residual if stride == 1 and in.c == out {
                conv(max(8, in.c * t / 4), 1) conv(min([out, 3,]), 1)
            } shortcut { relu }
            conv(max(), 1)
        }",
        "
        block inverted(out, t, stride=1)
          residual if ((stride == 1) and (in.c == out))
            conv(max(8, ((in.c * t) / 4)), 1)
            conv(min([out, 3]), 1)
          shortcut
            relu
          conv(max(), 1)
        ",
    );
}

#[test]
fn gate_with_a_postfix() {
    check(
        "block se() { gate { global_avgpool conv(4, 1) sigmoid } as y : [4, 8, 8] gate {} }",
        "
        block se()
          gate as y : [4, 8, 8]
            global_avgpool
            conv(4, 1)
            sigmoid
          gate
        ",
    );
}

/// `output NAME { body }` is a statement; `output` stays a name elsewhere: a layer's
/// argument, a block's parameter, a call of a block named so.
#[test]
fn output_statements_and_output_as_a_name() {
    check(
        "block output(output=1) { adaptive_avgpool(output=output) }
         model M(input: [1, 8, 8]) {
             output aux { flatten linear(10) } : [1, 8, 8]
             output
             output features {}
             output(2) flatten
         }",
        "
        block output(output=1)
          adaptive_avgpool(output=output)
        model M [1, 8, 8]
          output aux : [1, 8, 8]
            flatten
            linear(10)
          output
          output features
          output(2)
          flatten
        ",
    );
}

#[test]
fn residual_without_and_with_plain_shortcut() {
    check(
        "block b() { residual { relu } residual { relu } shortcut { conv(1, 1) } }",
        "
        block b()
          residual
            relu
          residual
            relu
          shortcut
            conv(1, 1)
        ",
    );
}

#[test]
fn dense_block_and_transition() {
    check(
        "block dense_block(convs, growth) {
            repeat convs { concat { {} { batchnorm relu conv(growth, 3, pad=1) } } }
        }
        block transition() { batchnorm relu conv(in.c / 2, 1) avgpool(2, stride=2) }",
        "
        block dense_block(convs, growth)
          repeat convs
            concat
              branch {}
              branch
                batchnorm
                relu
                conv(growth, 3, pad=1)
        block transition()
          batchnorm
          relu
          conv((in.c / 2), 1)
          avgpool(2, stride=2)
        ",
    );
}

#[test]
fn unet() {
    check(
        "block double_conv(c) { conv(c, 3) relu conv(c, 3) relu }
        model UNet(input: [1, 572, 572]) {
            double_conv(64) as e1
            maxpool(2) double_conv(128) as e2
            # ...
            convT(128, 2, stride=2)
            concat { crop(e2) {} } double_conv(128)
            # ...
            conv(2, 1)         : [2, 388, 388]
        }",
        "
        block double_conv(c)
          conv(c, 3)
          relu
          conv(c, 3)
          relu
        model UNet [1, 572, 572]
          double_conv(64) as e1
          maxpool(2)
          double_conv(128) as e2
          convT(128, 2, stride=2)
          concat
            branch
              crop(e2)
            branch {}
          double_conv(128)
          conv(2, 1) : [2, 388, 388]
        ",
    );
}

#[test]
fn postfixes_in_either_order() {
    check(
        "model M(input: [3]) { a as x : [3] b : [3] as y c() as z d : [1, 2] }",
        "
        model M [3]
          a as x : [3]
          b as y : [3]
          c() as z
          d : [1, 2]
        ",
    );
}

#[test]
fn repeat_forms() {
    check(
        "block b(n) { repeat n { relu } repeat i in 0..4 { conv(2 * i, 3) } repeat 3 {} }",
        "
        block b(n)
          repeat n
            relu
          repeat i in 0..4
            conv((2 * i), 3)
          repeat 3
        ",
    );
    check(
        "block b(n) { repeat j in n-1..in.c { relu } }",
        "
        block b(n)
          repeat j in (n - 1)..in.c
            relu
        ",
    );
    check(
        "block b(ws) { repeat w in ws { conv(w, 3) } repeat s in [[8, 1], [16, 2]] { relu } }",
        "
        block b(ws)
          repeat w in ws
            conv(w, 3)
          repeat s in [[8, 1], [16, 2]]
            relu
        ",
    );
}

#[test]
fn if_else_chains() {
    check(
        "block b(k) { if k == 1 { relu } if k > 2 { tanh } else { sigmoid }
          if k == 1 { a } else if k == 2 { b } else if not k { c } else { d } }",
        "
        block b(k)
          if (k == 1)
            relu
          if (k > 2)
            tanh
          else
            sigmoid
          if (k == 1)
            a
          else
            if (k == 2)
              b
            else
              if (not k)
                c
              else
                d
        ",
    );
}

#[test]
fn else_if_statement_spans() {
    let text = "block b(k) { if k { a } else if j { b } else { c } }";
    let f = parse_ok(text);
    let Item::Block(b) = &f.items[0] else {
        panic!()
    };
    assert_eq!(
        slice(text, b.body[0].span),
        "if k { a } else if j { b } else { c }"
    );
    let StmtKind::If(i) = &b.body[0].kind else {
        panic!()
    };
    let nested = &i.else_body.as_ref().unwrap()[0];
    assert_eq!(slice(text, nested.span), "if j { b } else { c }");
}

#[test]
fn calls_with_and_without_parens() {
    check(
        "model M(input: [1, 2, 3,]) { relu relu() f(1,) g(a=1, b=[1, 2,], c=-1) h(x == 1) }",
        "
        model M [1, 2, 3]
          relu
          relu()
          f(1)
          g(a=1, b=[1, 2], c=(-1))
          h((x == 1))
        ",
    );
}

#[test]
fn block_params_with_defaults() {
    check(
        "block b(a, b=2, c=[1, 1], d=same, e=true, f=0.5,) {}",
        "block b(a, b=2, c=[1, 1], d=same, e=true, f=0.5)",
    );
}

#[test]
fn keywords_inside_names_are_names() {
    check(
        "block use_in(inner, iffy, same2, as_) { concatenate repeated(inner) residuals }",
        "
        block use_in(inner, iffy, same2, as_)
          concatenate
          repeated(inner)
          residuals
        ",
    );
}

#[test]
fn whitespace_is_free_form() {
    check(
        "model\nM(\ninput\n:\n[\n1\n]\n)\n{\nconv\n(\n1\n,\npad\n=\n2\n)//c\n:[\n1\n]}",
        "
        model M [1]
          conv(1, pad=2) : [1]
        ",
    );
    check(
        "block b(){relu}model M(input:[1]){b}",
        "block b()\n  relu\nmodel M [1]\n  b",
    );
}

// ---- expressions -------------------------------------------------------------------------

#[test]
fn atoms() {
    check_expr("42", "42");
    check_expr("0.5", "0.5");
    check_expr("1e-5", "1e-5");
    check_expr("2.5e3", "2500.0");
    check_expr("1E+2", "100.0");
    // Python's `1.` and `.5`; `1..3` stays a range (see `repeat_statements`).
    check_expr("1.", "1.0");
    check_expr(".25", "0.25");
    check_expr("2.e1", "20.0");
    check_expr("[1., .5]", "[1.0, 0.5]");
    check_expr("true", "true");
    check_expr("false", "false");
    check_expr("same", "same");
    check_expr("in.c", "in.c");
    check_expr("in.rank", "in.rank");
    check_expr("x_1", "x_1");
    check_expr("[]", "[]");
    check_expr("[1, [2, 3], ]", "[1, [2, 3]]");
    check_expr("((7))", "7");
    check_expr("9223372036854775807", "9223372036854775807");
}

#[test]
fn precedence() {
    check_expr("1 + 2 * 3", "(1 + (2 * 3))");
    check_expr("1 * 2 + 3", "((1 * 2) + 3)");
    check_expr("1 - 2 - 3", "((1 - 2) - 3)");
    check_expr("8 / 4 / 2", "((8 / 4) / 2)");
    check_expr("7 % 3 * 2", "((7 % 3) * 2)");
    check_expr("(1 + 2) * 3", "((1 + 2) * 3)");
    check_expr("-a * b", "((-a) * b)");
    check_expr("a * -b", "(a * (-b))");
    check_expr("a - -b", "(a - (-b))");
    check_expr("--a", "(-(-a))");
    check_expr("-x[0]", "(-x[0])");
    check_expr("x[0][1]", "x[0][1]");
    check_expr("[1, 2][i + 1]", "[1, 2][(i + 1)]");
    check_expr("a + 1 == b * 2", "((a + 1) == (b * 2))");
    check_expr("a < b and c >= d", "((a < b) and (c >= d))");
    check_expr("a or b and c", "(a or (b and c))");
    check_expr("a and b or c and d", "((a and b) or (c and d))");
    check_expr("a or b or c", "((a or b) or c)");
    check_expr("not a == b", "(not (a == b))");
    check_expr("not a and b", "((not a) and b)");
    check_expr("a and not b or c", "((a and (not b)) or c)");
    check_expr("not not a", "(not (not a))");
    check_expr("a != b", "(a != b)");
    check_expr("a <= b", "(a <= b)");
    check_expr("a > -1", "(a > (-1))");
    check_expr("in.c / 2", "(in.c / 2)");
    check_expr(
        "stride != 1 or in.c != channels",
        "((stride != 1) or (in.c != channels))",
    );
}

#[test]
fn expression_spans() {
    let text = "model M(input: [(a + b) * c, -x[0], not p == q, [1, 2]]) {}";
    let f = parse_ok(text);
    let Item::Model(m) = &f.items[0] else {
        panic!()
    };
    let spans: Vec<&str> = m.input.iter().map(|e| slice(text, e.span)).collect();
    assert_eq!(spans, ["(a + b) * c", "-x[0]", "not p == q", "[1, 2]"]);
    assert_eq!(
        slice(text, m.input_span),
        "[(a + b) * c, -x[0], not p == q, [1, 2]]"
    );
    let ExprKind::Binary(_, l, r) = &m.input[0].kind else {
        panic!()
    };
    assert_eq!(slice(text, l.span), "(a + b)");
    assert_eq!(slice(text, r.span), "c");
    let ExprKind::Unary(_, x0) = &m.input[1].kind else {
        panic!()
    };
    assert_eq!(slice(text, x0.span), "x[0]");
}

#[test]
fn statement_spans_exclude_trailing_space_and_comments() {
    let text = "model M(input: [1]) {\n  flatten   : [400]   # note\n  conv(6, 5, pad=2)  # c\n  relu as r  \n}\n";
    let f = parse_ok(text);
    let Item::Model(m) = &f.items[0] else {
        panic!()
    };
    let stmts: Vec<&str> = m.body.iter().map(|s| slice(text, s.span)).collect();
    assert_eq!(
        stmts,
        ["flatten   : [400]", "conv(6, 5, pad=2)", "relu as r"]
    );
    assert_eq!(
        slice(text, m.body[0].assert.as_ref().unwrap().span),
        "[400]"
    );
    let StmtKind::Call(c) = &m.body[1].kind else {
        panic!()
    };
    assert_eq!(slice(text, c.span), "conv(6, 5, pad=2)");
    assert_eq!(slice(text, c.name.span), "conv");
    let args: Vec<&str> = c.args.iter().map(|a| slice(text, a.span)).collect();
    assert_eq!(args, ["6", "5", "pad=2"]);
    let StmtKind::Call(r) = &m.body[2].kind else {
        panic!()
    };
    assert_eq!(slice(text, r.span), "relu");
    assert_eq!(slice(text, m.body[2].alias.as_ref().unwrap().span), "r");
    assert_eq!(slice(text, m.span), &text[..text.len() - 1]);
    assert_eq!(slice(text, m.name.span), "M");
}

#[test]
fn construct_spans() {
    let text = "block b() { residual { relu } shortcut if x { c } concat { a {} { b } } }";
    let f = parse_ok(text);
    let Item::Block(b) = &f.items[0] else {
        panic!()
    };
    assert_eq!(slice(text, b.span), text);
    let StmtKind::Residual(r) = &b.body[0].kind else {
        panic!()
    };
    assert_eq!(slice(text, r.body_span), "{ relu }");
    assert_eq!(
        slice(text, r.shortcut.as_ref().unwrap().span),
        "shortcut if x { c }"
    );
    assert_eq!(
        slice(text, b.body[0].span),
        "residual { relu } shortcut if x { c }"
    );
    let StmtKind::Concat(c) = &b.body[1].kind else {
        panic!()
    };
    let branches: Vec<&str> = c.branches.iter().map(|br| slice(text, br.span)).collect();
    assert_eq!(branches, ["a", "{}", "{ b }"]);
    let text = r#"use "a.cnn"   # x"#;
    let Item::Use(u) = &parse_ok(text).items[0] else {
        panic!()
    };
    assert_eq!(slice(text, u.span), r#"use "a.cnn""#);
}

// ---- errors ------------------------------------------------------------------------------

const UNEXPECTED: &str = "cnnc::syntax::unexpected";

/// Habits from PyTorch and other languages get a help that says what cnnc wants instead.
#[test]
fn habits_from_other_languages_get_a_help() {
    let m = |body: &str| format!("model M(input: [1, 8, 8]) {{\n    {body}\n}}\n");
    for (body, words) in [
        ("conv(6, 5) nn.ReLU()", &["drop `nn.`", "`relu`"][..]),
        ("conv(6, 5) torch.relu", &["drop `torch.`"]),
        ("conv(6, 5) torch.nn.ReLU()", &["drop `torch.nn.`"]),
        // Keras's and TensorFlow's modules, the whole prefix.
        (
            "layers.Conv2D(32, 3)",
            &["not Keras or TensorFlow modules", "drop `layers.`"],
        ),
        (
            "tf.keras.layers.Dense(10)",
            &["drop `tf.keras.layers.`", "`linear(10)`"],
        ),
        ("conv(8, 3, activation=tf.nn.relu)", &["drop `tf.nn.`"]),
        (
            "self.conv1(x)",
            &["`self.conv1` is a layer made in `__init__`", "no `self.`"],
        ),
        // Keras's functional API and PyTorch's `forward`.
        (
            "x = layers.Conv2D(32, 3)(x)",
            &[
                "a layer is not applied to a tensor by name",
                "with no `x =`",
            ],
        ),
        (
            "x = self.conv1(x)",
            &["a layer is not applied to a tensor by name"],
        ),
        (
            "y = F.relu(x)",
            &[
                "after the layers that made `x`",
                "`as y` after it only where a later layer reads it",
            ],
        ),
        (
            "x = layers.add([x, s])",
            &["`x residual {} shortcut { s } as x`"],
        ),
        (
            "z = layers.Add()([x, s])",
            &["`x residual {} shortcut { s } as z`"],
        ),
        ("y = torch.cat([x, s], 1)", &["`concat { x s } as y`"]),
        (
            "y = layers.Concatenate()([a, b])",
            &["`concat { a b } as y`"],
        ),
        ("model.add(Dense(10))", &["cnnc has no `model.add`"]),
        // The tensor a block starts from, named as PyTorch's `identity = x` names it.
        (
            "as x conv(4, 3)",
            &["`as NAME` follows the layers", "takes it as a parameter"],
        ),
        (
            "in as x",
            &["`in` cannot be named", "`block b(x, c) { … x … }`"],
        ),
        (
            "x = in",
            &["cnnc has no variables", "takes it as a parameter"],
        ),
        // A line of PyTorch or Keras layer code: the whole of it in cnnc at once.
        (
            "nn.Conv2d(3, 16, kernel_size=(3, 3), padding=(1, 1))",
            &["drop `nn.`", "this line in cnnc is `conv(16, 3, pad=1)`"],
        ),
        (
            "x = layers.Conv2D(32, (3, 3), activation='relu', padding='same')(x)",
            &["this line in cnnc is `conv(32, 3, pad=same) relu`"],
        ),
        // Python's tuple to loop over.
        ("repeat f in (32, 64) { conv(f, 3) }", &["`[32, 64]`"]),
        // PyTorch's list of skips.
        (
            "conv(8, 3, pad=1) as skips[0]",
            &["names cannot be indexed", "`as skips1`"],
        ),
        ("concat { {} skips[1] }", &["names cannot be indexed"]),
        // Two outputs returned, PyTorch's `torch.cat`.
        (
            "return main, aux",
            &["every other output is an `output NAME { … }` statement"],
        ),
        (
            "y = torch.cat([a, b], dim=1) relu",
            &["`concat { a b } as y`"],
        ),
        ("torch.cat([a, b], dim=1)", &["is `concat { a b }`"]),
        // A ResNet block's `shortcut = x` / `identity = x`.
        ("shortcut = x", &["`residual { body }` (body(x) + x"]),
        ("identity = x", &["`residual { body }` (body(x) + x"]),
        // A name in curly quotes pasted from a document is the name alone.
        (
            "conv(8, 3, pad=\u{2018}same\u{2019})",
            &["values are not quoted in cnnc: write `same`"],
        ),
        ("conv(8, 3, pad=\u{201c}same\u{201d})", &["write `same`"]),
        ("conv(6, 5), relu", &["delete the `,`"]),
        ("conv(6, 5); relu", &["delete the `;`"]),
        (
            "repeat 3 conv(8, 3)",
            &["body of `repeat` is braced", "`repeat 3 { … }`"],
        ),
        ("repeat i in 1..3 conv(8, 3)", &["`repeat i in 1..3 { … }`"]),
        (
            "if in.c > 3 relu",
            &["body of `if` is braced", "`if in.c > 3 { … }`"],
        ),
        ("concat conv(3, 1)", &["body of `concat` is braced"]),
        (
            "gate sigmoid",
            &["body of `gate` is braced", "`gate { … }`"],
        ),
        // The statement is the last keyword before the token, not the line's first word.
        (
            "residual { conv(8, 3, pad=1) } shortcut conv(8, 1)",
            &["body of `shortcut` is braced", "`shortcut { … }`"],
        ),
        ("conv(8, 3) repeat 2 relu", &["`repeat 2 { … }`"]),
        (
            "residual { conv(8, 3, pad=1) } shortcut if in.c != 8 conv(8, 1)",
            &[
                "body of `shortcut` is braced",
                "`shortcut if in.c != 8 { … }`",
            ],
        ),
        // Python.
        (
            "conv(16, (3, 3))",
            &["a pair is written in brackets, `[3, 3]`"],
        ),
        ("conv(16, 3, stride=(2, 2))", &["`[2, 2]`"]),
        (
            "conv(16, 3, stride=1 if in.c == 3 else 2)",
            &["no conditional expression", "`[1, 2, 2, 2][i]`"],
        ),
        (
            "conv([16, 1 if in.c > 2 else 3][0], 3)",
            &["no conditional expression"],
        ),
        ("for i in range(3) { relu }", &["`repeat i in 0..n { … }`"]),
        (
            "if in.c > 2 { relu } elif in.c > 1 { relu }",
            &["write `else if`"],
        ),
        (
            "if in.c > 2 { relu } elif (in.c == 2) { relu }",
            &["write `else if`"],
        ),
        ("x = conv(4, 3)", &["with `as`", "`conv(16, 3) as x`"]),
        ("x = relu", &["with `as`"]),
        // PyTorch's sum of two tensors: a residual.
        (
            "out = x + y",
            &[
                "a sum of two tensors is a residual",
                "`x residual {} shortcut { y } as out`",
            ],
        ),
        ("a + b", &["`a residual {} shortcut { b }`"]),
        ("concat { {}, conv(8, 1) }", &["branches need no separator"]),
        // Misspelt keywords.
        ("repaet 2 { relu }", &["did you mean `repeat`?"]),
        ("Repeat 2 { relu }", &["keywords are lowercase"]),
        ("repeat i of 0..3 { relu }", &["`repeat i in 0..3 { … }`"]),
        (
            "if in.c > 2 { relu } esle { relu }",
            &["did you mean `else`?"],
        ),
        ("s = in.c + 4", &["`block …(…, s=in.c + 4)`"]),
        // A number worked out is a parameter's default, not a tensor's name.
        (
            "s = in.c / 4 # squeeze",
            &["no variables", "`block …(…, s=in.c / 4)`"],
        ),
        (
            "s = max(8, in.c / 4)",
            &["`block …(…, s=max(8, in.c / 4))`"],
        ),
        ("widths = [16, 32]", &["`block …(…, widths=[16, 32])`"]),
        // The statement after the assignment on its line is no part of the value.
        ("c = 8 conv(c, 1)", &["`block …(…, c=8)`"]),
        (
            "s = in.c / 4 relu conv(s, 1)",
            &["`block …(…, s=in.c / 4)`"],
        ),
        (
            "k = max(1, in.h / 2) - 1 maxpool(k)",
            &["`block …(…, k=max(1, in.h / 2) - 1)`"],
        ),
        (
            "repeat c, s in [[4, 1], [8, 2]] { conv(c, 3, stride=s) }",
            &[
                "one loop variable",
                "`repeat c in cfg { conv(c[0], 3, stride=c[1]) }`",
            ],
        ),
        (
            "repeat i in 1..=3 { relu }",
            &["write `1..4` for 1, 2 and 3"],
        ),
        (
            "resdual { conv(1, 3, pad=1) }",
            &["did you mean `residual`?"],
        ),
        ("concta { {} {} }", &["did you mean `concat`?"]),
        // A body given to what takes none.
        (
            "cat { {} { conv(8, 1) } }",
            &["`concat { {branch} {branch} … }`"],
        ),
        ("concatenate { {} {} }", &["`concat { {branch}"]),
        ("add { conv(1, 3, pad=1) }", &["`residual { body }`"]),
        (
            "relu conv_bn { relu }",
            &["`conv_bn` takes no body", "`output NAME`", "`conv_bn(…)`"],
        ),
        // A named output without its name.
        (
            "output { relu }",
            &["its name before the body, `output aux { … }`"],
        ),
        ("ouptut { relu }", &["did you mean `output`?"]),
        // A named output misspelt, or given more than its name.
        (
            "Output aux { relu }",
            &["did you mean `output aux { … }`? keywords are lowercase"],
        ),
        (
            "outputs aux { relu }",
            &["did you mean `output aux { … }`?"],
        ),
        (
            "output aux as t { relu }",
            &["`output aux { … }`: its name, then the body, with no arguments and no `as`"],
        ),
        (
            "output aux(3) { relu }",
            &["`output aux { … }`: its name, then the body"],
        ),
    ] {
        check_error(&m(body), UNEXPECTED, words);
    }
    for (file, words) in [
        (
            "block f(c):\n    conv(c, 3)\n",
            &["braced, not indented"][..],
        ),
        (
            "def f(c) { conv(c, 3) }\n",
            &["`block name(c, stride=1) { … }`"],
        ),
        (
            "class M(nn.Module) { }\n",
            &["`model Name(input: [C, H, W])"],
        ),
        ("import torch\n", &["nothing is imported"]),
        (
            "net = nn.Sequential(\n    conv(16, 3, pad=1),\n    relu,\n)\n",
            &["without commas", "`model Net(input: [C, H, W]) {"],
        ),
        (
            "model M(input: [3, 32, 32], classes=10) { relu }\n",
            &["a model takes only its input shape", "`body(10)`"],
        ),
        (
            "block f(k) { if 1 < k < 9 { relu } }\n",
            &["comparisons do not chain"],
        ),
        (
            "model M(input: [1]) { relu\nmodel N(input: [1]) { relu }\n",
            &["add a `}` before this `model`"],
        ),
        (
            "model M(input: [1]) { relu }\n  relu\n}\n",
            &["delete this `}` if the statements after it belong inside"],
        ),
        ("Model M(input: [1]) { relu }\n", &["did you mean `model`?"]),
        (
            "model M(input: [1]) { conv(4 3) }\n",
            &["separate the items with `,`"],
        ),
        (
            "model M(input: [1]) { conv(1_000, 1) }\n",
            &["no `_` separators in cnnc: write `1000`"],
        ),
        (
            "model M(input: [1]) { conv(0x10, 1) }\n",
            &["write `16` for `0x10`"],
        ),
        ("model M(input: [1]) { conv(+3, 1) }\n", &["no unary `+`"]),
        (
            "block stem { relu }\n",
            &["even none: `block stem() { … }`"],
        ),
        (
            "model M { relu }\n",
            &["`model M(input: [3, 32, 32]) { … }`"],
        ),
        (
            "model M(input: [1]) { repeat i in 0.. { relu } }\n",
            &["a range has both ends"],
        ),
        (
            "model M(input: [1]) { repeat i 0..3 { relu } }\n",
            &["`in` is missing"],
        ),
        (
            "model M(input: [1]) { repeat n linear(2) }\n",
            &["the body of `repeat` is braced"],
        ),
        (
            "model M(input: [1]) { repeat in [1, 2] { relu } }\n",
            &["names its variable"],
        ),
        (
            "model M(input: [1]) { for i in 0..2 { relu } }\n",
            &["loops are written with `repeat`"],
        ),
        (
            "model M(input: [1]) { repeat i in 0:3 { relu } }\n",
            &["a range is written `a..b`"],
        ),
        (
            "model M(input: [1]) { linear(8) | relu }\n",
            &["without `|`"],
        ),
        (
            "model M(input: [8]) { linear(1,000) }\n",
            &["an integer does not start with 0", "thousands separator"],
        ),
        (
            "model M(input: [8]) { linear(007) }\n",
            &["without the leading zeros: `7`"],
        ),
        (
            "model M(input: [8]) { linear(8) as conv_input: 8 }\n",
            &["a shape assertion is a list of sizes"],
        ),
        (
            "model M(input: 3, 32, 32) { relu }\n",
            &["the input shape is a list"],
        ),
        (
            "block blk(c) { relu }\nmodel M(input: [1]) { relu }\n  blk(8)\n}\n",
            &["delete this `}`"],
        ),
        (
            "model M(input: [1]) { relu }\n  repeat 2 { relu }\n}\n",
            &["delete this `}`"],
        ),
        (
            "model A(input: [1]) { relu }\nmodle M(input: [1]) { relu }\n",
            &["did you mean `model`?"],
        ),
        (
            "model M(input: [1]) {\n    block f(c) { conv(c, 1) }\n}\n",
            &["`block` is written at the top level of the file"],
        ),
        (
            "model M(input: [1]) { linear(8) as x as y }\n",
            &["a tensor takes one name"],
        ),
        (
            "model M(input: [1]) { relu else { relu } }\n",
            &["`else` follows the `}` of an `if`"],
        ),
        (
            "model M(input: [1]) { linear(8) : 8 }\n",
            &["a shape assertion is a list of sizes"],
        ),
    ] {
        check_error(file, UNEXPECTED, words);
    }
    // Parentheses that group an expression are no tuple.
    let d = check_error(&m("conv(16, 3, pad=(1 + 1) 2)"), UNEXPECTED, &["found"]);
    assert!(d.help.is_none_or(|h| !h.contains("pair")));
    // A dot after another name is not taken for a PyTorch module.
    let d = check_error(&m("a.b"), UNEXPECTED, &["found `.`"]);
    assert!(d.help.is_none_or(|h| !h.contains("PyTorch")));
}

#[test]
fn unexpected_tokens_are_named_in_words() {
    check_error(
        "model M(input: [1]) { conv(1) ) }",
        UNEXPECTED,
        &["a layer", "`}`", "found `)`"],
    );
    check_error(
        "blok b() {}",
        UNEXPECTED,
        &["`block`", "`model`", "`use`", "found `blok`"],
    );
    check_error(
        "block b() { conv(1 + ) }",
        UNEXPECTED,
        &["an expression", "found `)`"],
    );
    check_error("block b() { conv(pad=) }", UNEXPECTED, &["an expression"]);
    check_error("block b( { }", UNEXPECTED, &["a name", "`)`"]);
    check_error("block 3() {}", UNEXPECTED, &["a name", "found `3`"]);
    check_error("model M([1]) {}", UNEXPECTED, &["`input`"]);
    check_error("model M(input: 1) {}", UNEXPECTED, &["a list `[…]`"]);
    check_error("use blocks.cnn", UNEXPECTED, &["a quoted path"]);
    check_error(
        "use lib/blocks.cnn\n",
        UNEXPECTED,
        &["in double quotes: `use \"lib/blocks.cnn\"`"],
    );
    check_error(
        "block b() { repeat { relu } }",
        UNEXPECTED,
        &["an expression", "found `{`"],
    );
    check_error(
        "block b() { concat { ) } }",
        UNEXPECTED,
        &["a branch", "`}`"],
    );
    check_error(
        "block b() { relu as }",
        UNEXPECTED,
        &["a name", "found `}`"],
    );
    check_error("block b() { relu : 3 }", UNEXPECTED, &["a list"]);
    check_error(
        "block b() { a } }",
        UNEXPECTED,
        &["end of file", "found `}`"],
    );
    check_error(
        "model M(input: [1]) { x(a < b < c) }",
        UNEXPECTED,
        &["do not chain"],
    );
    check_error("block b() { relu @ }", UNEXPECTED, &["found `@`"]);
}

/// Habits from other languages get a help line: `&&`, `;` and `pad: 2`.
#[test]
fn habits_from_other_languages_are_explained() {
    check_error(
        "model M(input: [4]) { if 1 > 0 && 2 > 1 { relu } }",
        UNEXPECTED,
        &["found `&`", "write `and`"],
    );
    check_error(
        "model M(input: [4]) { relu; linear(2) }",
        UNEXPECTED,
        &["found `;`", "delete the `;`"],
    );
    check_error(
        "model M(input: [1, 8, 8]) { conv(6, 5, pad: 2) }",
        UNEXPECTED,
        &["found `:`", "`pad=2`"],
    );
    // Python's rule: no positional argument after a named one.
    check_error(
        "model M(input: [1, 8, 8]) { conv(kernel=3, 16) }",
        UNEXPECTED,
        &[
            "a positional argument after a named one",
            "positional arguments first",
        ],
    );
    // `in` alone, for the incoming feature count: its fields are the values.
    check_error(
        "model M(input: [4]) { linear(in) }",
        UNEXPECTED,
        &["found `in`", "`in.f` (features)"],
    );
}

/// Characters pasted from documents are named, with what to write instead; other non-ASCII
/// characters are shown with their code point.
#[test]
fn pasted_lookalike_characters_are_named() {
    check_error(
        "model M(input: [4]) { relu\u{a0}linear(2) }",
        UNEXPECTED,
        &["found U+00A0 NO-BREAK SPACE", "write a plain space instead"],
    );
    check_error(
        "model M(input: [4]) { relu\u{200b} linear(2) }",
        UNEXPECTED,
        &["U+200B ZERO WIDTH SPACE", "delete it"],
    );
    // A comment ends at a line separator an editor may draw as a line break: the layer
    // after it is not silently part of the comment.
    for separator in ['\u{2028}', '\u{2029}', '\u{85}'] {
        check_error(
            &format!("model M(input: [4]) {{\n  # first layer{separator}  linear(2)\n}}"),
            UNEXPECTED,
            &["write a plain line break instead"],
        );
    }
    check_error(
        "model M(input: [4]) { linear(\u{2212}2) }",
        UNEXPECTED,
        &["U+2212 MINUS SIGN", "write `-` instead"],
    );
    check_error(
        "use \u{201c}lib.cnn\u{201d}",
        UNEXPECTED,
        &["curly double quote", "write `\"`"],
    );
    check_error(
        "model \u{c4}(input: [4]) { relu }",
        UNEXPECTED,
        &["found `\u{c4}` (U+00C4)", "ASCII outside comments"],
    );
}

#[test]
fn unclosed_brace_points_at_the_opening_brace() {
    let text = "block b() {\n  relu\n  repeat 2 {\n    conv(1)\n";
    let d = check_error(text, UNEXPECTED, &["`}`", "end of file", "add a `}`"]);
    assert_eq!(d.labels.len(), 2, "{d:#?}");
    assert_eq!(d.labels[1].span.start as usize, text.rfind('{').unwrap());
    assert!(d.labels[1].text.contains("never closed"));
    // The `}` under `block` closes the repeat's `{` by count: the indentation says the
    // repeat's was left open, and the block's is named as what the count left.
    let text = "block b() {\n  relu\n  repeat 2 {\n    conv(1)\n}\n";
    let d = check_error(
        text,
        UNEXPECTED,
        &["end of file", "add a `}` after the body"],
    );
    assert_eq!(d.labels.len(), 3, "{d:#?}");
    assert_eq!(d.labels[1].span.start as usize, text.rfind('{').unwrap());
    assert!(d.labels[1].text.contains("probably the one not closed"));
    assert_eq!(d.labels[2].span.start as usize, text.find('{').unwrap());
    // The same with a definition after it: not "add a `}` before this `model`", which
    // would put `relu` inside the residual's body.
    let text = "block a(c) {\n    residual {\n        conv(c, 3, pad=1)\n    relu\n}\n\
                model M(input: [4, 8, 8]) {\n    a(4)\n}\n";
    let d = check_error(
        text,
        UNEXPECTED,
        &[
            "found `model`",
            "add a `}` after the body",
            "would put the lines after",
        ],
    );
    assert!(
        d.labels.iter().any(
            |l| l.span.start as usize == text.find("residual {").unwrap() + 9
                && l.text.contains("probably the one not closed")
        ),
        "{d:#?}"
    );
    // A definition left open with nothing inside misindented: its own `}`.
    let text = "block a(c) {\n    conv(c, 3)\nmodel M(input: [4, 8, 8]) {\n    a(4)\n}\n";
    check_error(
        text,
        UNEXPECTED,
        &["add a `}` before this `model` to close it"],
    );
}

#[test]
fn missing_paren_points_at_the_opening_paren() {
    let text = "block b() { conv(1, 2 relu }";
    let d = check_error(text, UNEXPECTED, &["`)`", "found `relu`"]);
    assert_eq!(d.labels[0].span, Span::new(FILE, 22, 26));
    assert_eq!(d.labels[1].span.start as usize, text.find("(1").unwrap());
}

#[test]
fn single_equals_in_a_condition() {
    check_error("block b(s) { if s = 1 { relu } }", UNEXPECTED, &["`==`"]);
    check_error(
        "block b(s) { residual { relu } shortcut if s = 2 { relu } }",
        UNEXPECTED,
        &["`==`"],
    );
}

#[test]
fn keywords_are_not_names() {
    check_error(
        "block in() {}",
        UNEXPECTED,
        &["a name", "found `in`", "keyword"],
    );
    check_error("block b(if) {}", UNEXPECTED, &["keyword"]);
    check_error("block b() { relu as same }", UNEXPECTED, &["keyword"]);
}

#[test]
fn integer_too_large() {
    let d = check_error(
        "model M(input: [99999999999999999999]) {}",
        "cnnc::syntax::int_too_large",
        &["too large"],
    );
    assert_eq!(d.labels[0].span, Span::new(FILE, 16, 36));
    // Every literal is reported, not only the first.
    let e = parse(
        "block b(a=99999999999999999999) { f(1e5, 18446744073709551616) }",
        FILE,
    )
    .unwrap_err();
    assert_eq!(e.error_count(), 2);
}

// ---- limits ------------------------------------------------------------------------------

const TOO_DEEP: &str = "cnnc::syntax::too_deep";

#[test]
fn nesting_at_the_limit_parses() {
    let depth = MAX_NESTING - 2; // the model's body and the call's parentheses
    let text = format!(
        "model M(input: [1]) {{ f({}1{}) }}",
        "(".repeat(depth),
        ")".repeat(depth)
    );
    parse_ok(&text);
    let lists = format!("model M(input: {}1{}) {{}}", "[".repeat(63), "]".repeat(63));
    parse_ok(&lists);
    let mut body = String::new();
    for _ in 0..MAX_NESTING - 1 {
        body.push_str("repeat 2 { ");
    }
    body.push_str("relu");
    body.push_str(&" }".repeat(MAX_NESTING - 1));
    parse_ok(&format!("model M(input: [1]) {{ {body} }}"));
}

const TOO_LONG: &str = "cnnc::syntax::too_long";

#[test]
fn names_numbers_and_strings_are_limited_in_length() {
    let name = |n: usize| format!("a{}", "b".repeat(n - 1));
    parse_ok(&format!("model M(input: [1]) {{ {} }}", name(MAX_WORD)));
    let number = format!("0.{}1", "0".repeat(MAX_WORD - 3));
    assert_eq!(number.len(), MAX_WORD);
    parse_ok(&format!("model M(input: [1]) {{ f({number}) }}"));
    parse_ok(&format!("use \"{}\"", "a".repeat(MAX_STRING - 2)));
    // A comment of any length is no word.
    parse_ok(&format!(
        "# {}\nmodel M(input: [1]) {{ }}",
        "x".repeat(100_000)
    ));
    let long = name(MAX_WORD + 1);
    let d = check_error(
        &format!("model M(input: [1]) {{ relu {long} }}"),
        TOO_LONG,
        &["a name of 257 bytes", "256"],
    );
    assert_eq!(d.labels[0].span.len(), MAX_WORD + 1);
    assert_eq!(
        d.labels[0].span.start as usize,
        "model M(input: [1]) { relu ".len()
    );
    check_error(
        &format!(
            "model M(input: [1]) {{ f(x={}.5) }}",
            "1".repeat(MAX_WORD + 1)
        ),
        TOO_LONG,
        &["a number of 257 bytes"],
    );
    // A name at the limit read with `.h` or in a range, or words between U+FEFF (the
    // grammar's whitespace), are no longer words.
    let at_limit = name(MAX_WORD);
    parse_ok(&format!(
        "model M(input: [1, 2, 2]) {{ relu as {at_limit} upsample(size=[{at_limit}.h, {at_limit}.w]) }}"
    ));
    parse_ok(&format!(
        "block b({at_limit}=2) {{ repeat i in 0..{at_limit} {{ relu }} }}"
    ));
    parse_ok(&format!(
        "model M(input: [1]) {{ {} }}",
        "relu\u{feff}".repeat(MAX_WORD)
    ));
    check_error(
        &format!("use \"{}\"", "a".repeat(MAX_STRING - 1)),
        TOO_LONG,
        &["a string of 4097 bytes", "4096"],
    );
    // An unclosed string ends at its line's end, or the file's.
    check_error(
        &format!("use \"{}", "a".repeat(MAX_STRING)),
        TOO_LONG,
        &["a string of 4097 bytes"],
    );
    // An unclosed string ends at its line's end.
    check_error(
        &format!("use \"{}\nmodel", "a".repeat(MAX_STRING)),
        TOO_LONG,
        &["a string of 4097 bytes"],
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for (open, close) in [("{", "}"), ("(", ")"), ("[", "]")] {
        let text = format!(
            "block b() {{ f({}{}) }}",
            open.repeat(100_000),
            close.repeat(100_000)
        );
        let d = check_error(&text, TOO_DEEP, &["64"]);
        assert_eq!(d.labels[0].span.len(), 1);
        assert!(d.help.is_some());
        // Unclosed brackets too.
        check_error(&open.repeat(100_000), TOO_DEEP, &[]);
    }
    // Brackets in comments and strings do not count.
    let text = format!("# {}\nuse \"{}\"", "(".repeat(1000), "[".repeat(1000));
    parse_ok(&text);
}

#[test]
fn long_prefix_chains_do_not_overflow() {
    for prefix in ["-", "- ", "not "] {
        let text = format!("model M(input: [{}1]) {{}}", prefix.repeat(100_000));
        check_error(&text, TOO_DEEP, &[]);
    }
    let both = format!("{}{}", "not ".repeat(50_000), "-".repeat(50_000));
    check_error(&format!("model M(input: [{both}1]) {{}}"), TOO_DEEP, &[]);
    // Up to the limit they parse.
    let text = format!("model M(input: [{}1]) {{}}", "-".repeat(MAX_EXPR_DEPTH));
    parse_ok(&text);
    let text = format!("model M(input: [{}1]) {{}}", "-".repeat(MAX_EXPR_DEPTH + 1));
    check_error(&text, TOO_DEEP, &["128"]);
}

#[test]
fn long_operator_chains_do_not_overflow() {
    let text = format!("model M(input: [1{}]) {{}}", " + 1".repeat(100_000));
    // A flat chain is said to be as deep as its operators, which it is.
    check_error(&text, TOO_DEEP, &["levels deep", "flat chain"]);
    // Up to the limit they parse.
    let text = format!("model M(input: [1{}]) {{}}", " + 1".repeat(MAX_EXPR_DEPTH));
    parse_ok(&text);
    let text = format!(
        "model M(input: [1{}]) {{}}",
        " + 1".repeat(MAX_EXPR_DEPTH + 1)
    );
    check_error(&text, TOO_DEEP, &[]);
    let text = format!("model M(input: [{}]) {{}}", vec!["a"; 100_000].join(" or "));
    check_error(&text, TOO_DEEP, &[]);
}

#[test]
fn long_else_if_chains_do_not_overflow() {
    let mut text = String::from("block b(k) { if k == 0 { relu }");
    for i in 1..100_000 {
        write!(text, " else if k == {i} {{ relu }}").unwrap();
    }
    text.push_str(" else { tanh } }");
    check_error(&text, TOO_DEEP, &["else if"]);
    // Once for the chain, not once per link past the limit.
    let diags = parse(&text, FILE).unwrap_err();
    assert_eq!(diags.iter().filter(|d| d.code == TOO_DEEP).count(), 1);
    let mut ok = String::from("block b(k) { if k == 0 { relu }");
    for i in 1..MAX_NESTING - 1 {
        write!(ok, " else if k == {i} {{ relu }}").unwrap();
    }
    ok.push_str(" }");
    parse_ok(&ok);
}

#[test]
fn a_large_file_parses() {
    let unit = "block b{i}(c, stride=1) {\n    conv(c, 3, pad=1, stride=stride) batchnorm relu  # a comment\n    maxpool(2, stride=2) : [c, in.h / 2, in.w / 2]\n}\n";
    let mut text = String::new();
    let mut n = 0;
    while text.len() < 5 * 1024 * 1024 {
        text.push_str(&unit.replace("{i}", &n.to_string()));
        n += 1;
    }
    let f = parse_ok(&text);
    assert_eq!(f.items.len(), n);
}

/// Prints the messages for a few broken inputs: `cargo test --lib print_messages -- --nocapture`.
#[test]
fn print_messages() {
    for text in [
        "blok b() {}",
        "model M(input: [1]) { conv(1) ) }",
        "block b() { conv(1 + ) }",
        "block b( { }",
        "block b() { repeat { relu } }",
        "block b() { concat { ) } }",
        "block b() { relu as }",
        "block b() { a } }",
        "model M(input: [1]) { x(a < b < c) }",
        "block b() { relu @ }",
        "block b(s) { if s = 1 { relu } }",
        "block b() {\n  relu\n  repeat 2 {\n    conv(1)\n}\n",
        "block b() { conv(1, 2 relu }",
        "block in() {}",
        "block b() { residual { relu } shortcut }",
        "block b() { if x { relu } else }",
        "model M(input: [1]) { flatten : [400 }",
        "model M(input: [1]) { x(a[0) }",
    ] {
        let d = parse(text, FILE).unwrap_err();
        let d = &d.0[0];
        println!(
            "{text:?}\n    {} | {:?} | {:?}",
            d.message,
            d.labels
                .iter()
                .map(|l| (&text[l.span.start as usize..l.span.end as usize], &l.text))
                .collect::<Vec<_>>(),
            d.help
        );
    }
}

#[test]
fn garbage_does_not_panic() {
    for text in [
        "\"",
        "use \"",
        "/",
        "model",
        "block b(",
        "{",
        "}",
        "]]]",
        "(((",
        "é",
        "block b() { é }",
        "model M(input: [1]) { conv(1)\u{0}",
        "block b() { 1 }",
        "..",
        "in.",
        "block b() { x[ }",
    ] {
        assert!(parse(text, FILE).is_err(), "{text:?}");
    }
}

#[test]
fn a_string_where_a_value_goes_names_the_string_and_says_what_to_write() {
    let text = "model M(input: [1, 8, 8]) { conv(4, 3, pad=\"same\") }";
    let d = check_error(
        text,
        "cnnc::syntax::unexpected",
        &["found a string", "write `same` without quotes"],
    );
    let l = &d.labels[0];
    assert_eq!(
        &text[l.span.start as usize..l.span.end as usize],
        "\"same\""
    );
    assert_eq!(l.text, "a string is not a value here");
    // Python's single quotes too, labelled from quote to quote.
    let text = "model M(input: [1, 8, 8]) { conv(4, 3, pad='same') }";
    let d = check_error(
        text,
        "cnnc::syntax::unexpected",
        &[
            "found a string in single quotes",
            "write `same` without quotes",
        ],
    );
    let l = &d.labels[0];
    assert_eq!(&text[l.span.start as usize..l.span.end as usize], "'same'");
    // Not closed: to the end of the line's code, the comment left out.
    let text = "model M(input: [1, 8, 8]) { conv(4, 3, pad='sam # it's\n) }";
    let d = check_error(text, "cnnc::syntax::unexpected", &["single quotes"]);
    let l = &d.labels[0];
    assert_eq!(&text[l.span.start as usize..l.span.end as usize], "'sam");
    // A path in single quotes.
    check_error(
        "use 'lib.cnn'",
        "cnnc::syntax::unexpected",
        &["a path is written in double quotes"],
    );
    let d = check_error(
        "model M(input: [1, 8, 8]) { dropout(\"half\") }",
        "cnnc::syntax::unexpected",
        &["strings only name files", "without quotes: `half`"],
    );
    assert!(d.help.is_some());
    // An unterminated string is covered to the end of its line.
    let text = "model M(input: [1, 8, 8]) { conv(4, \"3)\n }";
    let d = check_error(text, "cnnc::syntax::unexpected", &["a string"]);
    let l = &d.labels[0];
    assert_eq!(&text[l.span.start as usize..l.span.end as usize], "\"3)");
}

/// The 1-based line of each error's first label.
fn error_lines(text: &str, d: &Diagnostics) -> Vec<usize> {
    d.iter()
        .map(|d| {
            text[..d.labels[0].span.start as usize]
                .matches('\n')
                .count()
                + 1
        })
        .collect()
}

#[test]
fn independent_syntax_errors_are_all_reported() {
    let text = "model M(input: [3, 32, 32]) {\n  conv(8 3)\n  relu\n  conv(8, 3,, pad=1)\n}\n\nmodel N(input: [3, 8, 8]) {\n  conv(4, = 3)\n}\n";
    let d = parse(text, FILE).unwrap_err();
    let lines = error_lines(text, &d);
    assert_eq!(lines, [2, 4, 8], "{:#?}", d.0);
    assert!(d.iter().all(|d| d.code == "cnnc::syntax::unexpected"));
}

/// An error in a model's or block's header (`input: (3, 32, 32)`) does not hide the errors of
/// its body or of the models after it: the header stands in as a neutral one.
#[test]
fn recovery_goes_on_past_an_error_in_a_header() {
    let text = "model M(input: (3, 32, 32)) {\n    conv(16, 3, pad=1),\n    relu\n}\n\
                block b(x y) {\n    relu\n}\nmodel O(input: [3, 32, 32]) {\n    relu;\n}\n";
    let d = parse(text, FILE).unwrap_err();
    let lines = error_lines(text, &d);
    assert_eq!(lines, [1, 2, 5, 9], "{:#?}", d.0);
    // A header too short for the stand-in, or with a statement after its `{`, stops there.
    let text = "model M(x {\n relu;\n}\n";
    assert_eq!(parse(text, FILE).unwrap_err().0.len(), 1);
}

/// A mistyped keyword (`modle`, `blok`, `Model`) in a header that ends with `{` does not hide
/// the errors after it: the header stands in as a neutral one, its body is read.
#[test]
fn recovery_goes_on_past_a_mistyped_keyword() {
    let text = "modle M(input: [3, 8, 8]) {\n    conv(8 3)\n}\n\
                blok B(c) {\n    relu\n}\nModel O(input: [3, 8, 8]) {\n    relu;\n}\n\
                model P(input: [1]) { linear(2 2) }\n";
    let d = parse(text, FILE).unwrap_err();
    let lines = error_lines(text, &d);
    assert_eq!(lines, [1, 2, 4, 7, 8, 10], "{:#?}", d.0);
    assert!(d.0[0].help.as_deref().unwrap_or("").contains("`model`"));
    assert!(d.0[2].help.as_deref().unwrap_or("").contains("`block`"));
    // Inside a body a line is no header, whatever its first word.
    let text = "model M(input: [3, 8, 8]) {\n  residual {\n  relu x {\n  }\n  }\n  conv(8 3)\n}\n";
    assert_eq!(error_lines(text, &parse(text, FILE).unwrap_err()), [3]);
    // Too short for the stand-in: recovery stops at the first error.
    let text = "mdl M() {\n relu;\n}\n";
    assert_eq!(parse(text, FILE).unwrap_err().0.len(), 1);
}

#[test]
fn recovery_stops_where_blanking_a_line_could_invent_errors() {
    // A missing `)`: the file's brackets do not balance, so only the first error is real.
    let text = "model M(input: [3, 32, 32]) {\n  conv(8, 3\n  relu\n  conv(8 3)\n}\n";
    assert_eq!(parse(text, FILE).unwrap_err().0.len(), 1);
    // The failing line opens a block: blanking it would unbalance the rest.
    let text =
        "model M(input: [3, 32, 32]) { conv(8 3)\n  relu\n}\nmodel N(input: [1]) { linear(2 2) }\n";
    assert_eq!(parse(text, FILE).unwrap_err().0.len(), 1);
    // A correct file after recovery-worthy errors still parses when fixed.
    assert!(parse("model M(input: [1]) { linear(2) }", FILE).is_ok());
}

#[test]
fn recovery_does_not_blame_the_line_after_an_unfinished_statement() {
    for text in [
        // The failing line continues `residual`: blanking it would leave `residual` bare.
        "model M(input: [3, 8, 8]) {\n  residual\n  { conv(8, 3 3) }\n  relu\n}\n",
        // A block's body on the line after its header.
        "block B(c)\n{ conv(c 3) }\nmodel M(input: [3, 8, 8]) { B(4) }\n",
        // `as` waiting for its name on the next line.
        "model M(input: [3, 8, 8]) {\n  conv(4, 3) as\n  1\n  relu(2)\n}\n",
    ] {
        let d = parse(text, FILE).unwrap_err();
        assert_eq!(d.0.len(), 1, "{text:?}: {:#?}", d.0);
    }
}

#[test]
fn python_floor_division_and_power_are_explained() {
    // `//` comments out the rest of the line, leaving the `(` open; the `//` is labelled
    // where it is, though the error is found at a token lines after it.
    let text = "block se(c=in.c) {\n    gate { global_avgpool conv(in.c // 16, 1) relu }\n}\n";
    let d = check_error(
        text,
        UNEXPECTED,
        &["`//` starts a comment", "write `in.c / 16`"],
    );
    let at = text.find("//").unwrap() as u32;
    assert!(
        d.labels
            .iter()
            .any(|l| l.span.start == at && l.span.end == at + 2 && l.text.contains("comment")),
        "{:#?}",
        d.labels
    );
    let d = check_error(
        "model M(input: [3, 8, 8]) { repeat i in 0..3 { conv(16 * 2 ** i, 3) } }",
        UNEXPECTED,
        &["no power operator", "[16, 32, 64][i]"],
    );
    assert_eq!(d.message, "expected an expression, found `*`");
}

#[test]
fn control_characters_are_named_not_echoed() {
    let d = check_error(
        "model M(input: [3, 8, 8]) { conv(16, 3)\u{1b}[31m relu }",
        UNEXPECTED,
        &["a control character (U+001B)"],
    );
    assert!(!d.message.contains('\u{1b}'), "{}", d.message);
}

#[test]
fn diagram_and_c_habits_are_explained() {
    check_error(
        "model M(x: [3, 8, 8]) { relu }",
        UNEXPECTED,
        &["always named `input`"],
    );
    check_error(
        "model M(input: [3, 8, 8]) { conv(16, 3) -> relu }",
        UNEXPECTED,
        &["without arrows"],
    );
    check_error(
        "model M(input: [3, 8, 8]) { conv(16, 3) /* note */ relu }",
        UNEXPECTED,
        &["no block comments"],
    );
    check_error(
        "model M(input: [3, 8, 8]) {\n    maxpool(2))\n    relu\n}\n",
        UNEXPECTED,
        &["this `)` closes nothing"],
    );
}

#[test]
fn comments_and_hanging_lines_do_not_mislead_the_helps() {
    // A comment after an argument, the comma forgotten: not floor division.
    let d = check_error(
        "model M(input: [3, 8, 8]) {\n    conv(16   // out channels\n         3)\n}\n",
        UNEXPECTED,
        &[],
    );
    assert!(
        !d.help.clone().unwrap_or_default().contains("`//`"),
        "{d:?}"
    );
    // A condition continued on a second line, its `{` more indented than the `}` under the
    // statement: not the brace left open (the gate's is).
    let text = "block ir(out, stride=1) {\n    residual if stride == 1\n            and in.c == out {\n        conv(out, 3, pad=1) relu\n    }\n}\nmodel M(input: [8, 32, 32]) {\n    ir(8)\n    gate {\n        global_avgpool conv(8, 1) sigmoid\n    global_avgpool flatten linear(10)\n}\n";
    let d = check_error(text, UNEXPECTED, &["end of file"]);
    let suspect = d
        .labels
        .iter()
        .find(|l| l.text.contains("probably"))
        .expect("a suspect brace");
    assert_eq!(
        suspect.span.start as usize,
        text.find("gate {").unwrap() + 5
    );
}

#[test]
fn floor_division_is_told_from_a_comment_by_what_follows_it() {
    // Prose after `//`, even with brackets in it: a comment.
    let d = check_error(
        "model M(input: [3, 8, 8]) {\n    conv(16   // out channels (doubled)\n         3)\n}\n",
        UNEXPECTED,
        &[],
    );
    assert!(
        !d.help.clone().unwrap_or_default().contains("`//`"),
        "{d:?}"
    );
    // An operand and a comma, the call going on below: floor division.
    check_error(
        "model M(input: [8, 8, 8]) {\n    conv(in.c // 2,\n         3, pad=1)\n}\n",
        UNEXPECTED,
        &["write `in.c / 2`"],
    );
}

#[test]
fn unclosed_brace_is_found_by_the_indentation_of_its_statement() {
    let blames_the_repeat = |text: &str| {
        let d = check_error(
            text,
            UNEXPECTED,
            &["end of file", "add a `}` after the body"],
        );
        assert_eq!(
            d.labels[1].span.start as usize,
            text.find("2 {").unwrap() + 2,
            "{d:#?}"
        );
        assert!(d.labels[1].text.contains("probably the one not closed"));
    };
    // The residual's `{` ends a condition wrapped onto a second line, far to the right:
    // its statement begins at `residual`, lined up with the `}` that closes it by looks,
    // so the repeat inside it is the one left open.
    blames_the_repeat("model m(input: [4]) {\n    residual if in.f == 4 and\n                in.f > 1 {\n        repeat 2 {\n            relu\n    }\n}\n");
    // `} else if` and `shortcut if` bodies begin on the `}` line, their conditions wrapped.
    blames_the_repeat("model m(input: [4]) {\n    if true {\n        relu\n    } else if in.f == 4 and\n              in.f > 1 {\n        repeat 2 {\n            relu\n    }\n}\n");
    blames_the_repeat("model m(input: [4]) {\n    residual { relu } shortcut if in.f == 4 and\n                                 in.f > 1 {\n        repeat 2 {\n            relu\n    }\n}\n");
}

#[test]
fn expressions_print_as_they_parse() {
    let parse_one = |input: &str| {
        let text = format!("model M(input: [{input}]) {{}}");
        let Item::Model(m) = &parse_ok(&text).items[0] else {
            panic!("not a model")
        };
        m.input[0].clone()
    };
    for (input, printed) in [
        ("1+2*3", "1 + 2 * 3"),
        ("(1+2)*3", "(1 + 2) * 3"),
        ("a-(b-c)", "a - (b - c)"),
        ("(a-b)-c", "a - b - c"),
        ("-(a+1)", "-(a + 1)"),
        ("- -a", "--a"),
        ("not (a and b) or c", "not (a and b) or c"),
        ("not a == b", "not a == b"),
        ("(a < b) == c", "(a < b) == c"),
        ("a == (b < c)", "a == (b < c)"),
        ("[1, c/4, 0.5][i % 3]", "[1, c / 4, 0.5][i % 3]"),
        ("max(1,in.c/2)", "max(1, in.c / 2)"),
        ("1e-5", "1e-5"),
        ("(a and b) and c", "a and b and c"),
    ] {
        let e = parse_one(input);
        assert_eq!(e.to_string(), printed, "{input}");
        assert_eq!(
            expr_str(&parse_one(printed)),
            expr_str(&e),
            "{input} printed as {printed} parses otherwise"
        );
    }
}

#[test]
fn a_comma_with_nothing_before_it_is_named() {
    let d = check_error(
        "model M(input: [3, 8, 8]) { conv(8, 3,, pad=1) }",
        UNEXPECTED,
        &["two commas with nothing between them: delete one"],
    );
    assert!(!d.help.unwrap().contains("not closed"));
    check_error(
        "model M(input: [3, 8, 8]) { conv(, 8, 3) }",
        UNEXPECTED,
        &["nothing comes before this `,`"],
    );
    check_error(
        "model M(input: [3, 8, 8]) { conv(8, [3,, 3]) }",
        UNEXPECTED,
        &["two commas"],
    );
}

#[test]
fn a_control_character_after_the_model_is_not_blamed_on_its_brace() {
    let d = check_error(
        "model M(input: [3, 8, 8]) { conv(8, 3) }\n\0",
        UNEXPECTED,
        &["a control character (U+0000)", "a .cnn file is plain text"],
    );
    assert!(!d.help.unwrap().contains("delete this `}`"));
    assert_eq!(d.labels.len(), 1, "{:#?}", d.labels);
}
