//! Parameter initializers, reduced at compile time to [`dlc_ir::Init`].
//!
//! Kaiming, Xavier and PyTorch's layer defaults are all "uniform or normal
//! with a bound computed from the shape", so the IR only needs five kinds and
//! the numbers; the formulas live here, once, written as PyTorch's
//! `torch.nn.init` writes them (`calculate_gain`, `_calculate_fan_in_and_fan_out`).

use dlc_ir::Init;

/// A default for an initializer parameter.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum IDefault {
    /// Must be given.
    Required,
    /// A number.
    Num(f64),
    /// A string.
    Str(&'static str),
}

/// An initializer argument value.
#[derive(Clone, Debug, PartialEq)]
pub enum IArg {
    /// A number.
    Num(f64),
    /// A string (`mode`, `nonlinearity`).
    Str(String),
}

#[derive(Copy, Clone, Debug, PartialEq)]
enum Kind {
    Zeros,
    Ones,
    Constant,
    Uniform,
    Normal,
    XavierUniform,
    XavierNormal,
    KaimingUniform,
    KaimingNormal,
}

/// One initializer: its name, parameters and formula.
pub struct InitDef {
    /// Its name in the language.
    pub name: &'static str,
    /// Parameters in positional order with defaults.
    pub params: &'static [(&'static str, IDefault)],
    kind: Kind,
}

const KAIMING: &[(&str, IDefault)] = &[
    ("a", IDefault::Num(0.0)),
    ("mode", IDefault::Str("fan_in")),
    ("nonlinearity", IDefault::Str("leaky_relu")),
];
const GAIN: &[(&str, IDefault)] = &[("gain", IDefault::Num(1.0))];

/// Every initializer (aliases are separate rows with the same formula).
pub static INITS: &[InitDef] = &[
    InitDef {
        name: "zeros",
        params: &[],
        kind: Kind::Zeros,
    },
    InitDef {
        name: "ones",
        params: &[],
        kind: Kind::Ones,
    },
    InitDef {
        name: "constant",
        params: &[("value", IDefault::Required)],
        kind: Kind::Constant,
    },
    InitDef {
        name: "uniform",
        params: &[("low", IDefault::Num(0.0)), ("high", IDefault::Num(1.0))],
        kind: Kind::Uniform,
    },
    InitDef {
        name: "normal",
        params: &[("mean", IDefault::Num(0.0)), ("std", IDefault::Num(1.0))],
        kind: Kind::Normal,
    },
    InitDef {
        name: "xavier_uniform",
        params: GAIN,
        kind: Kind::XavierUniform,
    },
    InitDef {
        name: "glorot_uniform",
        params: GAIN,
        kind: Kind::XavierUniform,
    },
    InitDef {
        name: "xavier_normal",
        params: GAIN,
        kind: Kind::XavierNormal,
    },
    InitDef {
        name: "glorot_normal",
        params: GAIN,
        kind: Kind::XavierNormal,
    },
    InitDef {
        name: "kaiming_uniform",
        params: KAIMING,
        kind: Kind::KaimingUniform,
    },
    InitDef {
        name: "he_uniform",
        params: KAIMING,
        kind: Kind::KaimingUniform,
    },
    InitDef {
        name: "kaiming_normal",
        params: KAIMING,
        kind: Kind::KaimingNormal,
    },
    InitDef {
        name: "he_normal",
        params: KAIMING,
        kind: Kind::KaimingNormal,
    },
];

/// The initializer named `name`.
pub fn lookup(name: &str) -> Option<&'static InitDef> {
    INITS.iter().find(|d| d.name == name)
}

/// Why an initializer cannot be reduced.
#[derive(Clone, Debug, PartialEq)]
pub enum InitError {
    /// An argument is wrong.
    Bad(String),
    /// fan_in / fan_out cannot be computed from the shape.
    Fan(String),
}

impl InitDef {
    /// `kaiming_uniform(a: 0, mode: "fan_in", …)`.
    pub fn signature(&self) -> String {
        let ps: Vec<String> = self
            .params
            .iter()
            .map(|(n, d)| match d {
                IDefault::Required => n.to_string(),
                IDefault::Num(v) => format!("{n}: {v}"),
                IDefault::Str(s) => format!("{n}: {s:?}"),
            })
            .collect();
        format!("{}({})", self.name, ps.join(", "))
    }

    /// Computes the initializer for a parameter of `shape`; `args` has one
    /// entry per parameter, `None` where the default applies.
    pub fn reduce(&self, args: &[Option<IArg>], shape: &[u64]) -> Result<Init, InitError> {
        let arg = |i: usize| -> Result<IArg, InitError> {
            let (name, d) = self.params[i];
            match (args.get(i).cloned().flatten(), d) {
                (Some(a), _) => Ok(a),
                (None, IDefault::Num(v)) => Ok(IArg::Num(v)),
                (None, IDefault::Str(s)) => Ok(IArg::Str(s.into())),
                (None, IDefault::Required) => Err(InitError::Bad(format!("`{}` needs its argument `{name}`", self.name))),
            }
        };
        let num = |i: usize| -> Result<f64, InitError> {
            match arg(i)? {
                IArg::Num(v) => Ok(v),
                IArg::Str(s) => Err(InitError::Bad(format!(
                    "`{}` of `{}` must be a number, found the string {s:?}",
                    self.params[i].0, self.name
                ))),
            }
        };
        let string = |i: usize| -> Result<String, InitError> {
            match arg(i)? {
                IArg::Str(s) => Ok(s),
                IArg::Num(v) => Err(InitError::Bad(format!("`{}` of `{}` must be a string, found {v}", self.params[i].0, self.name))),
            }
        };
        Ok(match self.kind {
            Kind::Zeros => Init::Zeros,
            Kind::Ones => Init::Ones,
            Kind::Constant => Init::Constant(num(0)?),
            Kind::Uniform => {
                let (low, high) = (num(0)?, num(1)?);
                if low > high {
                    return Err(InitError::Bad(format!("uniform needs low <= high, found low = {low} > high = {high}")));
                }
                Init::Uniform { low, high }
            }
            Kind::Normal => {
                let (mean, std) = (num(0)?, num(1)?);
                if std < 0.0 {
                    return Err(InitError::Bad(format!("normal needs std >= 0, found {std}")));
                }
                Init::Normal { mean, std }
            }
            Kind::XavierUniform | Kind::XavierNormal => {
                let gain = num(0)?;
                let (fan_in, fan_out) = fans(shape).map_err(InitError::Fan)?;
                if self.kind == Kind::XavierUniform {
                    let a = gain * (6.0 / (fan_in + fan_out)).sqrt();
                    Init::Uniform { low: -a, high: a }
                } else {
                    Init::Normal {
                        mean: 0.0,
                        std: gain * (2.0 / (fan_in + fan_out)).sqrt(),
                    }
                }
            }
            Kind::KaimingUniform | Kind::KaimingNormal => {
                let a = num(0)?;
                let mode = string(1)?;
                let (fan_in, fan_out) = fans(shape).map_err(InitError::Fan)?;
                let fan = match mode.as_str() {
                    "fan_in" => fan_in,
                    "fan_out" => fan_out,
                    m => return Err(InitError::Bad(format!("mode must be \"fan_in\" or \"fan_out\", found {m:?}"))),
                };
                let std = gain(&string(2)?, Some(a)).map_err(InitError::Bad)? / fan.sqrt();
                if self.kind == Kind::KaimingUniform {
                    let bound = 3f64.sqrt() * std;
                    Init::Uniform { low: -bound, high: bound }
                } else {
                    Init::Normal { mean: 0.0, std }
                }
            }
        })
    }
}

/// PyTorch's `_calculate_fan_in_and_fan_out`: dim 1 is the input feature
/// maps, dim 0 the output ones, and the rest the receptive field (conv kernels).
pub fn fans(shape: &[u64]) -> Result<(f64, f64), String> {
    if shape.len() < 2 {
        return Err(format!(
            "fan_in and fan_out cannot be computed for a tensor with {} dim{} (they need at least 2: [out, in, ...])",
            shape.len(),
            if shape.len() == 1 { "" } else { "s" }
        ));
    }
    // In floating point: a huge shape must not overflow the integer product.
    let receptive: f64 = shape[2..].iter().map(|&d| d as f64).product();
    let (fan_in, fan_out) = (shape[1] as f64 * receptive, shape[0] as f64 * receptive);
    if fan_in == 0.0 || fan_out == 0.0 {
        return Err(format!("fan_in ({fan_in}) and fan_out ({fan_out}) must be positive; the shape has a zero dim"));
    }
    Ok((fan_in, fan_out))
}

/// PyTorch's `calculate_gain(nonlinearity, param)`.
pub fn gain(nonlinearity: &str, param: Option<f64>) -> Result<f64, String> {
    Ok(match nonlinearity {
        "linear" | "conv1d" | "conv2d" | "conv3d" | "conv_transpose1d" | "conv_transpose2d" | "conv_transpose3d" | "sigmoid" => 1.0,
        "tanh" => 5.0 / 3.0,
        "relu" => 2f64.sqrt(),
        "leaky_relu" => {
            let slope = param.unwrap_or(0.01);
            (2.0 / (1.0 + slope * slope)).sqrt()
        }
        "selu" => 0.75,
        other => {
            return Err(format!(
                "unknown nonlinearity {other:?} (expected \"linear\", \"conv2d\", \"sigmoid\", \"tanh\", \"relu\", \"leaky_relu\" or \"selu\")"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red(name: &str, args: &[Option<IArg>], shape: &[u64]) -> Result<Init, InitError> {
        lookup(name).unwrap().reduce(args, shape)
    }

    fn uniform_bound(i: Init) -> f64 {
        match i {
            Init::Uniform { low, high } => {
                assert_eq!(low, -high);
                high
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn fans_follow_pytorch() {
        assert_eq!(fans(&[256, 784]).unwrap(), (784.0, 256.0));
        assert_eq!(fans(&[32, 1, 3, 3]).unwrap(), (9.0, 288.0));
        assert!(fans(&[10]).is_err());
        assert!(fans(&[0, 3]).is_err());
    }

    #[test]
    fn kaiming_with_sqrt5_is_pytorchs_linear_default() {
        for (shape, fan_in) in [(vec![256u64, 784], 784.0f64), (vec![64, 32, 3, 3], 288.0)] {
            let b = uniform_bound(red("kaiming_uniform", &[Some(IArg::Num(5f64.sqrt()))], &shape).unwrap());
            assert!((b - 1.0 / fan_in.sqrt()).abs() < 1e-12, "{b}");
        }
    }

    #[test]
    fn kaiming_defaults_and_modes() {
        // a = 0, leaky_relu: gain sqrt(2), bound sqrt(6 / fan_in).
        let b = uniform_bound(red("kaiming_uniform", &[], &[10, 20]).unwrap());
        assert!((b - (6.0f64 / 20.0).sqrt()).abs() < 1e-12);
        let b = uniform_bound(red("he_uniform", &[None, Some(IArg::Str("fan_out".into()))], &[10, 20]).unwrap());
        assert!((b - (6.0f64 / 10.0).sqrt()).abs() < 1e-12);
        let n = red("kaiming_normal", &[None, None, Some(IArg::Str("relu".into()))], &[10, 20]).unwrap();
        assert_eq!(
            n,
            Init::Normal {
                mean: 0.0,
                std: (2.0f64 / 20.0).sqrt()
            }
        );
        let t = red("kaiming_normal", &[None, None, Some(IArg::Str("tanh".into()))], &[10, 20]).unwrap();
        assert_eq!(
            t,
            Init::Normal {
                mean: 0.0,
                std: 5.0 / 3.0 / 20f64.sqrt()
            }
        );
        assert!(matches!(
            red("kaiming_normal", &[None, Some(IArg::Str("fan".into()))], &[1, 1]),
            Err(InitError::Bad(_))
        ));
    }

    #[test]
    fn xavier_and_plain() {
        let b = uniform_bound(red("xavier_uniform", &[], &[30, 20]).unwrap());
        assert!((b - (6.0f64 / 50.0).sqrt()).abs() < 1e-12);
        let b = uniform_bound(red("glorot_uniform", &[Some(IArg::Num(2.0))], &[30, 20]).unwrap());
        assert!((b - 2.0 * (6.0f64 / 50.0).sqrt()).abs() < 1e-12);
        assert_eq!(
            red("xavier_normal", &[], &[30, 20, 1]).unwrap(),
            Init::Normal {
                mean: 0.0,
                std: (2.0f64 / 50.0).sqrt()
            }
        );
        assert_eq!(red("zeros", &[], &[3]).unwrap(), Init::Zeros);
        assert_eq!(red("ones", &[], &[]).unwrap(), Init::Ones);
        assert_eq!(red("constant", &[Some(IArg::Num(0.5))], &[3]).unwrap(), Init::Constant(0.5));
        assert_eq!(red("uniform", &[], &[3]).unwrap(), Init::Uniform { low: 0.0, high: 1.0 });
        assert_eq!(
            red("normal", &[None, Some(IArg::Num(0.02))], &[3]).unwrap(),
            Init::Normal { mean: 0.0, std: 0.02 }
        );
    }

    #[test]
    fn bad_arguments_and_fans_are_errors() {
        assert!(matches!(
            red("uniform", &[Some(IArg::Num(1.0)), Some(IArg::Num(0.0))], &[3]),
            Err(InitError::Bad(_))
        ));
        assert!(matches!(red("normal", &[None, Some(IArg::Num(-1.0))], &[3]), Err(InitError::Bad(_))));
        assert!(matches!(red("constant", &[], &[3]), Err(InitError::Bad(_))));
        assert!(matches!(red("xavier_uniform", &[], &[3]), Err(InitError::Fan(_))));
        assert!(matches!(
            red("kaiming_uniform", &[Some(IArg::Str("x".into()))], &[3, 3]),
            Err(InitError::Bad(_))
        ));
    }

    #[test]
    fn gains_match_calculate_gain() {
        assert_eq!(gain("linear", None).unwrap(), 1.0);
        assert_eq!(gain("relu", None).unwrap(), 2f64.sqrt());
        assert_eq!(gain("leaky_relu", None).unwrap(), (2.0f64 / 1.0001).sqrt());
        assert_eq!(gain("leaky_relu", Some(0.2)).unwrap(), (2.0f64 / 1.04).sqrt());
        assert!(gain("swish", None).is_err());
    }
}
