//! A line of PyTorch or Keras layer code written into a .cnn file, in cnnc's words: one
//! layer call per line (`nn.Conv2d(3, 16, kernel_size=(3, 3), padding=1)`, `x =
//! layers.Conv2D(32, (3, 3), activation='relu', padding='same')(x)`, `model.add(Dense(10))`)
//! fails to parse at its first Python habit (a tuple, a quote, a module prefix), one per run;
//! [`translate_line`] gives the whole line at once, for the syntax error's help. Only layers
//! and arguments it knows are translated; anything else gives no translation rather than a
//! wrong one.

/// A value as Python writes it.
#[derive(Clone, Debug, PartialEq)]
enum Py {
    Number(String),
    Text(String),
    Name(String),
    Tuple(Vec<Py>),
}

impl Py {
    /// The value as cnnc writes it: `(3, 3)` is `3`, `(1, 2)` is `[1, 2]`, `True` is `true`.
    fn cnnc(&self) -> Option<String> {
        Some(match self {
            Py::Number(n) => n.clone(),
            Py::Name(n) if n == "True" => "true".into(),
            Py::Name(n) if n == "False" => "false".into(),
            Py::Tuple(items) => {
                let items: Option<Vec<String>> = items.iter().map(Py::cnnc).collect();
                let items = items?;
                if items.len() == 2 && items[0] == items[1] {
                    items[0].clone()
                } else {
                    format!("[{}]", items.join(", "))
                }
            }
            _ => return None,
        })
    }

    fn text(&self) -> Option<&str> {
        match self {
            Py::Text(t) => Some(t),
            _ => None,
        }
    }

    fn is(&self, value: &str) -> bool {
        self.cnnc().is_some_and(|v| v == value)
    }
}

/// Splits `s` at its top-level commas.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start, mut quote) = (0i32, 0usize, None::<char>);
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[') => depth += 1,
            (None, ')' | ']') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn value(s: &str) -> Option<Py> {
    let s = s.trim();
    let quoted = |open: char, close: char| s.strip_prefix(open)?.strip_suffix(close);
    if let Some(inner) = quoted('\'', '\'').or_else(|| quoted('"', '"')) {
        return Some(Py::Text(inner.to_string()));
    }
    if let Some(inner) = quoted('(', ')').or_else(|| quoted('[', ']')) {
        let items: Option<Vec<Py>> = split_top(inner).into_iter().map(value).collect();
        return Some(Py::Tuple(items?));
    }
    if s.parse::<f64>().is_ok() {
        return Some(Py::Number(s.to_string()));
    }
    let name = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    name.then(|| Py::Name(s.to_string()))
}

/// A call's arguments: positional, then by name.
struct Args {
    positional: Vec<Py>,
    named: Vec<(String, Py)>,
}

impl Args {
    /// The argument at `index` or named `name` (the first of `names` given).
    fn get(&self, index: Option<usize>, names: &[&str]) -> Option<&Py> {
        names
            .iter()
            .find_map(|n| self.named.iter().find(|(k, _)| k == n).map(|(_, v)| v))
            .or_else(|| index.and_then(|i| self.positional.get(i)))
    }

    /// Whether every argument given is one of `known` (by name) or among the first
    /// `positional` by position: anything else, and the line is not translated.
    fn only(&self, positional: usize, known: &[&str]) -> bool {
        self.positional.len() <= positional
            && self.named.iter().all(|(k, _)| known.contains(&k.as_str()))
    }
}

/// An activation given by name (`activation='relu'`, `Activation('relu')`) as cnnc's layer;
/// `Some("")` for none (`'linear'`), None for one cnnc lacks.
fn activation(name: &str) -> Option<&'static str> {
    Some(match name {
        "relu" => "relu",
        "sigmoid" => "sigmoid",
        "tanh" => "tanh",
        "softmax" => "softmax",
        "swish" | "silu" => "silu",
        "gelu" => "gelu",
        "elu" => "elu",
        "relu6" => "relu6",
        "hard_sigmoid" => "hardsigmoid",
        "hard_swish" | "hard_silu" => "hardswish",
        "mish" => "mish",
        "leaky_relu" => "leaky_relu(0.2)",
        "linear" => "",
        _ => return None,
    })
}

/// `name=value` beside the layer's own, unless `value` is the default.
fn option(out: &mut Vec<String>, name: &str, v: Option<&Py>, default: &str) -> Option<()> {
    if let Some(v) = v {
        let v = v.cnnc()?;
        if v != default {
            out.push(format!("{name}={v}"));
        }
    }
    Some(())
}

/// One layer call, `class(args)`, in cnnc's words (several layers where an activation
/// comes with it).
fn translate_call(class: &str, args: &Args) -> Option<String> {
    let call = |name: &str, parts: Vec<String>| {
        if parts.is_empty() {
            name.to_string()
        } else {
            format!("{name}({})", parts.join(", "))
        }
    };
    let with_activation = |layer: String| -> Option<String> {
        match args.get(None, &["activation"]) {
            None => Some(layer),
            Some(a) => match activation(a.text().or(match a {
                Py::Name(n) if n == "None" => Some("linear"),
                _ => None,
            })?)? {
                "" => Some(layer),
                act => Some(format!("{layer} {act}")),
            },
        }
    };
    Some(match class {
        "Conv2d" | "ConvTranspose2d" => {
            let transposed = class == "ConvTranspose2d";
            let known: &[&str] = &[
                "in_channels",
                "out_channels",
                "kernel_size",
                "stride",
                "padding",
                "output_padding",
                "dilation",
                "groups",
                "bias",
            ];
            if !args.only(if transposed { 6 } else { 5 }, known) {
                return None;
            }
            let mut p = vec![
                args.get(Some(1), &["out_channels"])?.cnnc()?,
                args.get(Some(2), &["kernel_size"])?.cnnc()?,
            ];
            option(&mut p, "stride", args.get(Some(3), &["stride"]), "1")?;
            match args.get(Some(4), &["padding"]) {
                Some(v) if v.text() == Some("same") => p.push("pad=same".into()),
                Some(v) if v.text() == Some("valid") => {}
                v => option(&mut p, "pad", v, "0")?,
            }
            if transposed {
                option(
                    &mut p,
                    "output_pad",
                    args.get(Some(5), &["output_padding"]),
                    "0",
                )?;
            }
            option(&mut p, "dilation", args.get(None, &["dilation"]), "1")?;
            option(&mut p, "groups", args.get(None, &["groups"]), "1")?;
            option(&mut p, "bias", args.get(None, &["bias"]), "true")?;
            call(if transposed { "convT" } else { "conv" }, p)
        }
        "Conv2D" | "Conv2DTranspose" => {
            let known: &[&str] = &[
                "filters",
                "kernel_size",
                "strides",
                "padding",
                "activation",
                "use_bias",
                "dilation_rate",
            ];
            if !args.only(2, known) {
                return None;
            }
            let mut p = vec![
                args.get(Some(0), &["filters"])?.cnnc()?,
                args.get(Some(1), &["kernel_size"])?.cnnc()?,
            ];
            let stride = args.get(None, &["strides"]);
            option(&mut p, "stride", stride, "1")?;
            let same = args
                .get(None, &["padding"])
                .is_some_and(|v| v.text() == Some("same"));
            // With a stride, `same` is padding cnnc gives as numbers, which the layer's
            // input size decides: written `pad=same`, the check's own error gives them.
            if same && class == "Conv2DTranspose" {
                return None;
            }
            if same {
                p.push("pad=same".into());
            }
            option(&mut p, "dilation", args.get(None, &["dilation_rate"]), "1")?;
            option(&mut p, "bias", args.get(None, &["use_bias"]), "true")?;
            with_activation(call(if class == "Conv2D" { "conv" } else { "convT" }, p))?
        }
        "Linear" => {
            if !args.only(3, &["in_features", "out_features", "bias"]) {
                return None;
            }
            let mut p = vec![args.get(Some(1), &["out_features"])?.cnnc()?];
            option(&mut p, "bias", args.get(Some(2), &["bias"]), "true")?;
            call("linear", p)
        }
        "Dense" => {
            if !args.only(1, &["units", "activation", "use_bias"]) {
                return None;
            }
            let mut p = vec![args.get(Some(0), &["units"])?.cnnc()?];
            option(&mut p, "bias", args.get(None, &["use_bias"]), "true")?;
            with_activation(call("linear", p))?
        }
        "MaxPool2d" | "AvgPool2d" | "MaxPooling2D" | "AveragePooling2D" | "MaxPool2D"
        | "AvgPool2D" => {
            let max = class.starts_with("Max");
            let keras = class.ends_with('D');
            let known: &[&str] = if keras {
                &["pool_size", "strides"]
            } else {
                &["kernel_size", "stride", "padding", "ceil_mode"]
            };
            if !args.only(if keras { 1 } else { 3 }, known) {
                return None;
            }
            let kernel = args
                .get(Some(0), &["kernel_size", "pool_size"])
                .map_or(Some("2".to_string()), Py::cnnc)?;
            let mut p = vec![kernel.clone()];
            let stride = args.get(Some(1), &["stride", "strides"]);
            if !stride.is_some_and(|s| matches!(s, Py::Name(n) if n == "None")) {
                option(&mut p, "stride", stride, &kernel)?;
            }
            option(&mut p, "pad", args.get(Some(2), &["padding"]), "0")?;
            if args.get(None, &["ceil_mode"]).is_some_and(|v| v.is("true")) {
                p.push("ceil=true".into());
            }
            call(if max { "maxpool" } else { "avgpool" }, p)
        }
        "AdaptiveAvgPool2d" | "AdaptiveMaxPool2d" => {
            if !args.only(1, &["output_size"]) {
                return None;
            }
            let size = args.get(Some(0), &["output_size"])?.cnnc()?;
            let kind = if class.contains("Avg") { "avg" } else { "max" };
            if size == "1" {
                format!("global_{kind}pool")
            } else {
                format!("adaptive_{kind}pool({size})")
            }
        }
        "GlobalAveragePooling2D" | "GlobalAvgPool2D" if args.only(0, &[]) => {
            "global_avgpool flatten".into()
        }
        "GlobalMaxPooling2D" | "GlobalMaxPool2D" if args.only(0, &[]) => {
            "global_maxpool flatten".into()
        }
        "BatchNorm2d" | "BatchNorm1d" | "BatchNormalization" => {
            if !args.only(1, &["num_features", "eps"]) {
                return None;
            }
            let mut p = Vec::new();
            option(&mut p, "eps", args.get(None, &["eps"]), "1e-05")?;
            call("batchnorm", p)
        }
        "Dropout" => {
            if !args.only(1, &["p", "rate", "inplace"]) {
                return None;
            }
            let rate = args
                .get(Some(0), &["p", "rate"])
                .map_or(Some("0.5".to_string()), Py::cnnc)?;
            format!("dropout({rate})")
        }
        "Flatten" if args.only(1, &["start_dim"]) => "flatten".into(),
        "Activation" => {
            if !args.only(1, &["activation"]) {
                return None;
            }
            match activation(args.get(Some(0), &["activation"])?.text()?)? {
                "" => return None,
                act => act.to_string(),
            }
        }
        "ReLU" | "Sigmoid" | "Tanh" | "SiLU" | "GELU" | "Mish" | "Hardswish" | "Hardsigmoid"
        | "ELU" | "ReLU6"
            if args.only(0, &["inplace"]) =>
        {
            match class {
                "Hardswish" => "hardswish".into(),
                "Hardsigmoid" => "hardsigmoid".into(),
                other => other.to_ascii_lowercase(),
            }
        }
        "LeakyReLU" => {
            if !args.only(1, &["negative_slope", "inplace", "alpha"]) {
                return None;
            }
            let slope = args
                .get(Some(0), &["negative_slope", "alpha"])
                .map_or(Some("0.01".to_string()), Py::cnnc)?;
            format!("leaky_relu({slope})")
        }
        "Softmax" if args.only(0, &["dim"]) => "softmax".into(),
        "UpSampling2D" | "Upsample" => {
            if !args.only(1, &["size", "scale_factor", "interpolation", "mode"]) {
                return None;
            }
            let factor = args.get(Some(0), &["size", "scale_factor"])?.cnnc()?;
            if factor.contains('[') || factor.contains('.') {
                return None;
            }
            let mode = args
                .get(None, &["interpolation", "mode"])
                .and_then(Py::text);
            match mode {
                None | Some("nearest") => format!("upsample({factor})"),
                Some("bilinear") if !args.named.iter().any(|(k, _)| k == "align_corners") => {
                    format!("upsample({factor}, bilinear=true)")
                }
                _ => return None,
            }
        }
        _ => return None,
    })
}

/// The cnnc for a line of PyTorch or Keras layer code (`nn.Conv2d(3, 16, (3, 3),
/// padding=1)`, `x = layers.Dense(10, activation='softmax')(x)`, `model.add(…)`, a
/// `Sequential` item with its trailing comma), when the line is one layer call cnnc has,
/// with arguments it knows.
pub fn translate_line(line: &str) -> Option<String> {
    let mut s = line.split('#').next()?.trim().trim_end_matches(',').trim();
    // `x = …(x)`: the assignment of Keras's functional API or a `forward`.
    if let Some((lhs, rhs)) = s.split_once('=') {
        let lhs = lhs.trim();
        if !lhs.is_empty()
            && lhs
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            && !rhs.starts_with('=')
        {
            s = rhs.trim();
        }
    }
    if let Some(inner) = s
        .strip_prefix("model.add(")
        .and_then(|r| r.strip_suffix(')'))
    {
        s = inner.trim();
    }
    // The module prefix: `nn.`, `torch.nn.`, `layers.`, `tf.keras.layers.`.
    let open = s.find('(')?;
    let class = s[..open].rsplit('.').next()?;
    let prefix = &s[..open - class.len()];
    let modules = [
        "nn.",
        "torch.nn.",
        "layers.",
        "keras.layers.",
        "tf.keras.layers.",
        "",
    ];
    if !modules.contains(&prefix) {
        return None;
    }
    // The arguments, to the parenthesis that closes them; then maybe `(x)`.
    let mut depth = 0i32;
    let close = s[open..].char_indices().find_map(|(i, c)| {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            _ => {}
        }
        (depth == 0).then_some(open + i)
    })?;
    let rest = s[close + 1..].trim();
    let applied = rest.is_empty()
        || rest
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .is_some_and(|x| x.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if !applied {
        return None;
    }
    let mut args = Args {
        positional: Vec::new(),
        named: Vec::new(),
    };
    for part in split_top(&s[open + 1..close]) {
        match part.split_once('=') {
            Some((k, v))
                if !v.starts_with('=')
                    && k.trim()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                args.named.push((k.trim().to_string(), value(v)?));
            }
            _ if args.named.is_empty() => args.positional.push(value(part)?),
            _ => return None,
        }
    }
    translate_call(class, &args)
}

#[cfg(test)]
mod tests {
    use super::translate_line;

    #[test]
    fn pytorch_and_keras_lines_in_cnnc() {
        for (line, cnnc) in [
            (
                "nn.Conv2d(3, 16, kernel_size=(3, 3), padding=(1, 1))",
                "conv(16, 3, pad=1)",
            ),
            (
                "self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)",
                "conv(64, 7, stride=2, pad=3, bias=false)",
            ),
            (
                "nn.ConvTranspose2d(64, 32, 2, stride=2),",
                "convT(32, 2, stride=2)",
            ),
            ("nn.Linear(400, 120)", "linear(120)"),
            (
                "nn.MaxPool2d(kernel_size=3, stride=2, padding=1)",
                "maxpool(3, stride=2, pad=1)",
            ),
            ("nn.MaxPool2d(2, 2)", "maxpool(2)"),
            ("nn.AdaptiveAvgPool2d((1, 1))", "global_avgpool"),
            ("nn.AdaptiveAvgPool2d((6, 6))", "adaptive_avgpool(6)"),
            ("nn.ReLU(inplace=True)", "relu"),
            ("nn.Dropout(p=0.5)", "dropout(0.5)"),
            ("nn.LeakyReLU(0.2, inplace=True)", "leaky_relu(0.2)"),
            ("nn.BatchNorm2d(64)", "batchnorm"),
            (
                "x = layers.Conv2D(32, (3, 3), activation='relu', padding='same')(x)",
                "conv(32, 3, pad=same) relu",
            ),
            (
                "model.add(Dense(10, activation='softmax'))",
                "linear(10) softmax",
            ),
            ("layers.Dense(64, activation=\"relu\"),", "linear(64) relu"),
            ("MaxPooling2D((2, 2))", "maxpool(2)"),
            ("layers.GlobalAveragePooling2D()", "global_avgpool flatten"),
            ("tf.keras.layers.Dropout(0.25)", "dropout(0.25)"),
            ("layers.Activation('swish')", "silu"),
            (
                "layers.UpSampling2D(size=2, interpolation='bilinear')",
                "upsample(2, bilinear=true)",
            ),
            ("nn.Upsample(scale_factor=2, mode='nearest')", "upsample(2)"),
            ("layers.Conv2D(64, 3, strides=2)", "conv(64, 3, stride=2)"),
        ] {
            assert_eq!(translate_line(line).as_deref(), Some(cnnc), "{line}");
            // What it writes is cnnc that checks.
            let flat = if cnnc.starts_with("linear") {
                "flatten "
            } else {
                ""
            };
            let src = format!("model K(input: [64, 16, 16]) {{ {flat}{cnnc} }}\n");
            let c = crate::compile_source(std::path::Path::new("k.cnn"), src.clone());
            assert!(!c.diagnostics.has_errors(), "{src}: {:?}", c.diagnostics);
        }
        // Not one layer cnnc has, or an argument it cannot say: no translation.
        // `same` with a stride: the check then gives the padding for the layer's input.
        assert_eq!(
            translate_line("Conv2D(64, (3, 3), padding='same', strides=(2, 2), activation='relu')")
                .as_deref(),
            Some("conv(64, 3, stride=2, pad=same) relu")
        );
        for line in [
            "layers.Conv2DTranspose(64, 3, strides=2, padding='same')",
            "nn.Conv2d(3, 16, 3, padding_mode='reflect')",
            "layers.Lambda(lambda x: x * 2)",
            "x = torch.cat([a, b], dim=1)",
            "conv(16, 3, pad=1)",
            "foo.Conv2d(3, 16, 3)",
            "layers.Activation('selu')",
            "nn.Upsample(scale_factor=1.5)",
        ] {
            assert_eq!(translate_line(line), None, "{line}");
        }
    }
}
