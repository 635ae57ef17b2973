//! How each attribute kind, type and number prints: the exact text that both
//! MLIR and our parser must read back.

mod common;

use common::{t, tt};
use dlc_ir::{Attr, DType, DenseAttr, DenseData, Type, attrs, parse_module, print_attr};

fn dense(shape: &[i64], dtype: DType, data: DenseData) -> String {
    print_attr(&Attr::Dense(DenseAttr { ty: tt(shape, dtype), data }))
}

#[test]
fn scalar_attributes() {
    assert_eq!(print_attr(&Attr::Int(3)), "3");
    assert_eq!(print_attr(&Attr::Int(-1)), "-1");
    assert_eq!(print_attr(&Attr::Int(i64::MIN)), "-9223372036854775808");
    assert_eq!(print_attr(&Attr::Bool(true)), "true");
    assert_eq!(print_attr(&Attr::Bool(false)), "false");
    assert_eq!(print_attr(&Attr::from(DType::F32)), "f32");
    assert_eq!(print_attr(&Attr::Type(Type::Index)), "index");
    assert_eq!(print_attr(&Attr::Type(t(&[3], DType::F32))), "tensor<3xf32>");
}

#[test]
fn floats_always_have_a_dot_and_round_trip() {
    let cases = [
        (0.5, "0.5"),
        (1.0, "1.0"),
        (1e-8, "1.0e-8"),
        (1e21, "1.0e21"),
        (1.5e300, "1.5e300"),
        (-0.0, "-0.0"),
        (0.1, "0.1"),
        (-0.0357, "-0.0357"),
        (f64::MAX, "1.7976931348623157e308"),
        (f64::MIN_POSITIVE / 2.0, "1.1125369292536007e-308"),
    ];
    for (v, s) in cases {
        assert_eq!(print_attr(&Attr::Float(v)), s);
        assert_eq!(s.parse::<f64>().unwrap().to_bits(), v.to_bits(), "{s}");
    }
}

#[test]
fn non_finite_floats_print_as_bit_patterns() {
    assert_eq!(print_attr(&Attr::Float(f64::INFINITY)), "0x7FF0000000000000 : f64");
    assert_eq!(print_attr(&Attr::Float(f64::NEG_INFINITY)), "0xFFF0000000000000 : f64");
    assert_eq!(print_attr(&Attr::Float(f64::NAN)), "0x7FF8000000000000 : f64");
    let payload = f64::from_bits(0x7FF0_0000_0000_0042);
    assert_eq!(print_attr(&Attr::Float(payload)), "0x7FF0000000000042 : f64");
    // The payload survives the parser exactly.
    let m = parse_module(r#"func.func @f() attributes {nan = 0x7FF0000000000042 : f64} { return }"#).unwrap();
    assert_eq!(m.functions[0].attrs["nan"].as_float().unwrap().to_bits(), 0x7FF0_0000_0000_0042);
}

#[test]
fn strings_use_mlir_escapes() {
    let s = |x: &str| print_attr(&Attr::Str(x.into()));
    assert_eq!(s("lt"), r#""lt""#);
    assert_eq!(s("a\"b"), r#""a\"b""#);
    assert_eq!(s("back\\slash"), r#""back\\slash""#);
    assert_eq!(s("line\nnext\ttab"), r#""line\nnext\ttab""#);
    assert_eq!(s("bell\x07 nul\0 del\x7f"), r#""bell\07 nul\00 del\7F""#);
    assert_eq!(s("é ✓"), "\"é ✓\"");
}

#[test]
fn arrays_and_dictionaries() {
    assert_eq!(print_attr(&Attr::ints(&[1, -1])), "[1, -1]");
    assert_eq!(print_attr(&Attr::Array(vec![])), "[]");
    let d = attrs! {"b" => 1i64, "a" => "x", "dl.role" => "param", "needs quotes" => true, "dash-key" => 0.5};
    assert_eq!(print_attr(&Attr::Dict(d)), r#"{a = "x", b = 1, "dash-key" = 0.5, dl.role = "param", "needs quotes" = true}"#);
}

#[test]
fn dense_constants() {
    use DenseData::*;
    assert_eq!(dense(&[], DType::F32, Float(vec![1.0])), "dense<1.0> : tensor<f32>");
    assert_eq!(dense(&[2, 3], DType::F32, Float(vec![0.5])), "dense<0.5> : tensor<2x3xf32>");
    assert_eq!(dense(&[2, 2], DType::F32, Float(vec![1.0, 2.0, 3.0, 4.0])), "dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>");
    assert_eq!(dense(&[1, 2], DType::F64, Float(vec![1.0, 2.0])), "dense<[[1.0, 2.0]]> : tensor<1x2xf64>");
    assert_eq!(dense(&[0], DType::F32, Float(vec![])), "dense<> : tensor<0xf32>");
    assert_eq!(dense(&[2, 0], DType::I64, Int(vec![])), "dense<> : tensor<2x0xi64>");
    assert_eq!(dense(&[3], DType::I32, Int(vec![-1, 0, 7])), "dense<[-1, 0, 7]> : tensor<3xi32>");
    assert_eq!(dense(&[2], DType::I1, Bool(vec![true, false])), "dense<[true, false]> : tensor<2xi1>");
    assert_eq!(dense(&[], DType::I1, Bool(vec![false])), "dense<false> : tensor<i1>");
}

#[test]
fn f32_elements_print_as_the_f32_they_hold() {
    // 0.1 stored as f64 and 0.1f32 widened both denote the f32 nearest 0.1.
    assert_eq!(dense(&[2], DType::F32, DenseData::Float(vec![0.1, 0.1f32 as f64])), "dense<[0.1, 0.1]> : tensor<2xf32>");
    // An f64 tensor keeps all the digits.
    assert_eq!(dense(&[], DType::F64, DenseData::Float(vec![0.1f32 as f64])), "dense<0.10000000149011612> : tensor<f64>");
    assert_eq!(dense(&[2], DType::F32, DenseData::Float(vec![1e-8, 1e21])), "dense<[1.0e-8, 1.0e21]> : tensor<2xf32>");
    assert_eq!(dense(&[], DType::F32, DenseData::Float(vec![-0.0])), "dense<-0.0> : tensor<f32>");
}

#[test]
fn non_finite_elements_use_the_element_types_bits() {
    let inf = |dtype| dense(&[2], dtype, DenseData::Float(vec![f64::INFINITY, f64::NAN]));
    assert_eq!(inf(DType::F32), "dense<[0x7F800000, 0x7FC00000]> : tensor<2xf32>");
    assert_eq!(inf(DType::F64), "dense<[0x7FF0000000000000, 0x7FF8000000000000]> : tensor<2xf64>");
    // Too large for f32: it is infinity as an f32 element.
    assert_eq!(dense(&[], DType::F32, DenseData::Float(vec![1e300])), "dense<0x7F800000> : tensor<f32>");
}

#[test]
fn types_print_in_mlir_syntax() {
    assert_eq!(t(&[-1, 784], DType::F32).to_string(), "tensor<?x784xf32>");
    assert_eq!(t(&[], DType::F32).to_string(), "tensor<f32>");
    for d in DType::ALL {
        assert_eq!(Type::Scalar(d).to_string(), d.name());
    }
    assert_eq!(Type::Index.to_string(), "index");
}

#[test]
fn affine_maps_print_as_mlir_and_parse_back() {
    use dlc_ir::{AffineExpr, AffineMap};
    let window = AffineExpr::constant(-1).plus_dim(1, 2).plus_dim(2, 1);
    let m = AffineMap { dims: 3, results: vec![AffineExpr::dim(0), window, AffineExpr::constant(0)] };
    assert_eq!(print_attr(&Attr::Map(m)), "affine_map<(d0, d1, d2) -> (d0, d1 * 2 + d2 - 1, 0)>");
    let neg = AffineMap { dims: 2, results: vec![AffineExpr::constant(3).plus_dim(1, -1), AffineExpr::dim(0).plus_dim(1, -2)] };
    assert_eq!(print_attr(&Attr::Map(neg)), "affine_map<(d0, d1) -> (-d1 + 3, d0 - d1 * 2)>");
    assert_eq!(print_attr(&Attr::Map(AffineMap::projection(2, &[]))), "affine_map<(d0, d1) -> ()>");
    assert_eq!(print_attr(&Attr::Map(AffineMap { dims: 0, results: vec![AffineExpr::constant(0)] })), "affine_map<() -> (0)>");
    // Printed text parses back to the same map and prints identically.
    let maps = [
        "affine_map<(d0, d1) -> (d0, d1)>",
        "affine_map<(d0, d1) -> (d1, 0)>",
        "affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2 * 2 + d4 - 1, d3 * 2 + d5)>",
        "affine_map<(d0) -> ()>",
        "affine_map<() -> (0)>",
        "affine_map<(d0, d1) -> (-d1 + 3, d0 - d1 * 2)>",
        "affine_map<(d0) -> (d0 * 4611686018427387904 - 9223372036854775807)>",
    ];
    for text in maps {
        let src = format!("func.func @f() attributes {{m = {text}, ms = [{text}, {text}]}} {{\n  return\n}}\n");
        let m = parse_module(&src).unwrap_or_else(|e| panic!("{text}: {e}"));
        let a = &m.functions[0].attrs;
        assert_eq!(print_attr(&a["m"]), text);
        assert_eq!(print_attr(&a["ms"]), format!("[{text}, {text}]"));
        assert!(matches!(&a["m"], Attr::Map(_)), "{text}");
    }
    // Other spellings of the same map print in the one canonical form.
    for (text, canonical) in [
        ("affine_map<(d0,d1)->(2*d1+d0+d1-1)>", "affine_map<(d0, d1) -> (d0 + d1 * 3 - 1)>"),
        ("affine_map<(d0)\n -> (0 + d0 * 1)>", "affine_map<(d0) -> (d0)>"),
        ("affine_map<(d0) -> (d0 - d0 + 2)>", "affine_map<(d0) -> (2)>"),
    ] {
        let m = parse_module(&format!("func.func @f() attributes {{m = {text}}} {{\n  return\n}}")).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(print_attr(&m.functions[0].attrs["m"]), canonical);
    }
}

#[test]
fn attribute_dictionaries_parse_on_their_own() {
    use dlc_ir::{Attr, parse_attr_dict, print::print_attr_dict};
    let a = parse_attr_dict("{transpose_b = true, axes = [1, -1], value = dense<[1.0, 2.0]> : tensor<2xf32>}").unwrap();
    assert_eq!(a["transpose_b"], Attr::Bool(true));
    assert_eq!(a["axes"], Attr::ints(&[1, -1]));
    let text = print_attr_dict(&a);
    assert_eq!(parse_attr_dict(&text).unwrap(), a);
    // Whitespace is optional: the compact form reads back the same.
    assert_eq!(parse_attr_dict(&text.replace(' ', "")).unwrap(), a);
    assert!(parse_attr_dict("{a = 1} extra").is_err());
    assert!(parse_attr_dict("{a = }").is_err());
}
