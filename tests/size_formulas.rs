//! Property tests of the size formulas: for random conv / pool / transposed-conv
//! hyperparameters, cnnc's output size (through the language, parser to checker) equals the
//! formula of the notes evaluated independently here, and a transposed conv with the conv's
//! hyperparameters maps the conv's output size back to its input size when the stride
//! divides evenly.

use proptest::prelude::*;
use std::path::Path;

/// The notes' formula, in i128 so nothing overflows: `None` when the output is not positive.
fn conv_formula(n: i128, k: i128, s: i128, p: i128, d: i128) -> Option<i128> {
    let room = n + 2 * p - d * (k - 1) - 1;
    if room < 0 {
        None
    } else {
        Some(room / s + 1)
    }
}

fn transposed_formula(n: i128, k: i128, s: i128, p: i128, d: i128, op: i128) -> i128 {
    (n - 1) * s - 2 * p + d * (k - 1) + op + 1
}

/// Compiles a one-layer model on a [2, n, n] input; the output shape or the error codes.
fn compile(layer: &str, n: u64) -> Result<Vec<u64>, Vec<String>> {
    let text = format!("model M(input: [2, {n}, {n}]) {{ {layer} }}");
    let c = cnnc::compile_source(Path::new("prop.cnn"), text);
    if c.diagnostics.has_errors() {
        Err(c
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.code.to_string())
            .collect())
    } else {
        Ok(c.models[0].output_shape().0.clone())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn conv_output_size_is_the_formula(n in 1u64..80, k in 1u64..8, s in 1u64..5, p in 0u64..4, d in 1u64..4) {
        let got = compile(&format!("conv(3, {k}, stride={s}, pad={p}, dilation={d})"), n);
        match conv_formula(n as i128, k as i128, s as i128, p as i128, d as i128) {
            Some(o) => prop_assert_eq!(got, Ok(vec![3, o as u64, o as u64])),
            None => prop_assert_eq!(got, Err(vec!["cnnc::shape::window_too_large".to_string()])),
        }
    }

    #[test]
    fn pool_output_size_is_the_formula(n in 1u64..80, k in 1u64..8, s in 1u64..5, p in 0u64..4, ceil in any::<bool>()) {
        let got = compile(&format!("maxpool({k}, stride={s}, pad={p}, ceil={ceil})"), n);
        if p > k / 2 {
            prop_assert_eq!(got, Err(vec!["cnnc::shape::pool_pad".to_string()]));
            return Ok(());
        }
        let (n, k, s, p) = (n as i128, k as i128, s as i128, p as i128);
        // PyTorch's pooling_output_shape: floor division, also of a negative room (in ceil
        // mode a window may overhang the padded input by less than a stride).
        let room = n + 2 * p - k;
        let mut o = (room + if ceil { s - 1 } else { 0 }).div_euclid(s) + 1;
        if o <= 0 {
            prop_assert_eq!(got, Err(vec!["cnnc::shape::window_too_large".to_string()]));
            return Ok(());
        }
        // PyTorch: the last window must start inside the input or the left padding.
        if ceil && (o - 1) * s >= n + p {
            o -= 1;
        }
        prop_assert_eq!(got, Ok(vec![2, o as u64, o as u64]));
    }

    #[test]
    fn transposed_conv_output_size_is_the_formula(n in 1u64..40, k in 1u64..6, s in 1u64..4, p in 0u64..3, d in 1u64..3, op in 0u64..3) {
        let got = compile(&format!("convT(3, {k}, stride={s}, pad={p}, output_pad={op}, dilation={d})"), n);
        let o = transposed_formula(n as i128, k as i128, s as i128, p as i128, d as i128, op as i128);
        // PyTorch's rule: output_pad below the stride or below the dilation.
        if op >= s && op >= d {
            prop_assert_eq!(got, Err(vec!["cnnc::shape::output_pad".to_string()]));
        } else if o <= 0 {
            prop_assert_eq!(got, Err(vec!["cnnc::shape::window_too_large".to_string()]));
        } else {
            prop_assert_eq!(got, Ok(vec![3, o as u64, o as u64]));
        }
    }

    #[test]
    fn transposed_conv_undoes_the_conv(n in 1u64..60, k in 1u64..7, s in 1u64..4, p in 0u64..3, d in 1u64..3) {
        let room = n as i128 + 2 * p as i128 - d as i128 * (k as i128 - 1) - 1;
        prop_assume!(room >= 0 && room % s as i128 == 0);
        let layers = format!(
            "conv(4, {k}, stride={s}, pad={p}, dilation={d}) convT(2, {k}, stride={s}, pad={p}, dilation={d})"
        );
        match compile(&layers, n) {
            Ok(shape) => prop_assert_eq!(shape, vec![2, n, n]),
            // The transposed conv can only fail where its own padding exceeds what it makes.
            Err(codes) => prop_assert!(false, "conv then convT failed: {:?}", codes),
        }
    }
}
