//! A model function's signature as the IR records it: which arguments are
//! inputs and which are parameters (with their initializers), and the names of
//! its outputs. Everything a runner needs is in the IR text itself, so
//! `dlc run` works on a `.mlir` file as well as on a `.dl` model.
//!
//! Conventions, written by the frontend and read here:
//! - each argument has `dl.role = "input"`, `"param"` or `"state"` (optimizer state);
//! - a parameter or state has `dl.init = {kind = "uniform", low = …, high = …}` (see [`Init`]);
//! - the function has `dl.outputs = ["logits", …]`, one name per result.

use crate::attr::{Attr, Attrs};
use crate::module::Function;
use crate::types::{TensorType, Type};

/// How a parameter is initialized, with every bound already computed
/// (Kaiming, Xavier and PyTorch's defaults reduce to these at compile time).
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// Every element equal to the value.
    Constant(f64),
    /// Independent draws from U(low, high).
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// Independent draws from N(mean, std²).
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
}

impl Init {
    /// Encodes as the `dl.init` dictionary attribute.
    pub fn to_attr(&self) -> Attr {
        let mut d = Attrs::new();
        let kind = match self {
            Init::Zeros => "zeros",
            Init::Ones => "ones",
            Init::Constant(v) => {
                d.insert("value".into(), Attr::Float(*v));
                "constant"
            }
            Init::Uniform { low, high } => {
                d.insert("low".into(), Attr::Float(*low));
                d.insert("high".into(), Attr::Float(*high));
                "uniform"
            }
            Init::Normal { mean, std } => {
                d.insert("mean".into(), Attr::Float(*mean));
                d.insert("std".into(), Attr::Float(*std));
                "normal"
            }
        };
        d.insert("kind".into(), Attr::Str(kind.into()));
        Attr::Dict(d)
    }

    /// Decodes the `dl.init` dictionary attribute.
    pub fn from_attr(a: &Attr) -> Result<Init, String> {
        let Attr::Dict(d) = a else {
            return Err(format!("dl.init must be a dictionary, got {}", a.kind_name()));
        };
        let f = |k: &str| {
            d.get(k).and_then(Attr::as_float).ok_or_else(|| format!("dl.init needs a float '{k}'"))
        };
        match d.get("kind").and_then(Attr::as_str) {
            Some("zeros") => Ok(Init::Zeros),
            Some("ones") => Ok(Init::Ones),
            Some("constant") => Ok(Init::Constant(f("value")?)),
            Some("uniform") => Ok(Init::Uniform { low: f("low")?, high: f("high")? }),
            Some("normal") => Ok(Init::Normal { mean: f("mean")?, std: f("std")? }),
            other => Err(format!("unknown dl.init kind {other:?} (expected zeros, ones, constant, uniform or normal)")),
        }
    }
}

/// Whether an argument is fed by the caller or owned by the model.
#[derive(Clone, Debug, PartialEq)]
pub enum Role {
    /// Fed on every call.
    Input,
    /// A trainable parameter with its initializer.
    Param(Init),
    /// Optimizer state carried between training steps, with its initial value.
    State(Init),
}

/// One function argument.
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    /// The argument's name (its SSA name without `%`).
    pub name: String,
    /// Its tensor type.
    pub ty: TensorType,
    /// Input or parameter.
    pub role: Role,
}

/// A model function's arguments and named results.
#[derive(Clone, Debug, PartialEq)]
pub struct Signature {
    /// Arguments in order.
    pub args: Vec<Arg>,
    /// Output names and types, in result order.
    pub outputs: Vec<(String, Type)>,
}

impl Signature {
    /// Reads the signature conventions of `f`; an argument without `dl.role`
    /// is an input, results without `dl.outputs` are named `output0`, ….
    pub fn of(f: &Function) -> Result<Signature, String> {
        let empty = Attrs::new();
        let mut args = Vec::new();
        for (i, &v) in f.args().iter().enumerate() {
            let data = f.value(v);
            let name = data.name.clone().unwrap_or_else(|| format!("arg{i}"));
            let ty = data
                .ty
                .as_tensor()
                .ok_or_else(|| format!("argument %{name} must be a tensor, got {}", data.ty))?
                .clone();
            let attrs = f.arg_attrs(i).unwrap_or(&empty);
            let role = match attrs.get("dl.role").map(|a| a.as_str()) {
                None | Some(Some("input")) => Role::Input,
                Some(Some(role @ ("param" | "state"))) => {
                    let what = if role == "param" { "parameter" } else { "optimizer state" };
                    let init = attrs.get("dl.init").ok_or_else(|| format!("{what} %{name} has no dl.init"))?;
                    let init = Init::from_attr(init).map_err(|e| format!("{what} %{name}: {e}"))?;
                    if role == "param" { Role::Param(init) } else { Role::State(init) }
                }
                Some(_) => return Err(format!("argument %{name}: dl.role must be \"input\", \"param\" or \"state\"")),
            };
            args.push(Arg { name, ty, role });
        }
        let names: Vec<String> = match f.attrs.get("dl.outputs") {
            Some(Attr::Array(a)) => a
                .iter()
                .map(|x| x.as_str().map(str::to_string).ok_or("dl.outputs must be an array of strings".to_string()))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("dl.outputs must be an array of strings".into()),
            None => (0..f.result_types.len()).map(|i| format!("output{i}")).collect(),
        };
        if names.len() != f.result_types.len() {
            return Err(format!("dl.outputs names {} results, the function returns {}", names.len(), f.result_types.len()));
        }
        let outputs = names.into_iter().zip(f.result_types.iter().cloned()).collect();
        Ok(Signature { args, outputs })
    }

    /// The input arguments.
    pub fn inputs(&self) -> impl Iterator<Item = &Arg> {
        self.args.iter().filter(|a| a.role == Role::Input)
    }

    /// The parameter arguments with their initializers.
    pub fn params(&self) -> impl Iterator<Item = (&Arg, &Init)> {
        self.args.iter().filter_map(|a| match &a.role {
            Role::Param(i) => Some((a, i)),
            Role::Input | Role::State(_) => None,
        })
    }

    /// The optimizer-state arguments with their initial values.
    pub fn state(&self) -> impl Iterator<Item = (&Arg, &Init)> {
        self.args.iter().filter_map(|a| match &a.role {
            Role::State(i) => Some((a, i)),
            Role::Input | Role::Param(_) => None,
        })
    }
}

/// The `dl.role`/`dl.init` attributes of a parameter argument.
pub fn param_attrs(init: &Init) -> Attrs {
    let mut a = Attrs::new();
    a.insert("dl.role".into(), Attr::Str("param".into()));
    a.insert("dl.init".into(), init.to_attr());
    a
}

/// The `dl.role`/`dl.init` attributes of an optimizer-state argument.
pub fn state_attrs(init: &Init) -> Attrs {
    let mut a = Attrs::new();
    a.insert("dl.role".into(), Attr::Str("state".into()));
    a.insert("dl.init".into(), init.to_attr());
    a
}

/// The `dl.role` attribute of an input argument.
pub fn input_attrs() -> Attrs {
    let mut a = Attrs::new();
    a.insert("dl.role".into(), Attr::Str("input".into()));
    a
}

/// Sets the function's `dl.outputs` names.
pub fn set_output_names(f: &mut Function, names: &[&str]) {
    f.attrs.insert("dl.outputs".into(), Attr::Array(names.iter().map(|&n| Attr::from(n)).collect()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::Builder;
    use crate::registry::OpKind;
    use crate::types::{DType, Dim};

    #[test]
    fn signature_reads_back_what_the_conventions_write() {
        let mut f = Function::new("forward");
        let x = f.add_arg(TensorType::new(vec![Dim::Dynamic, Dim::Static(3)], DType::F32).into(), Some("x"), input_attrs());
        let init = Init::Uniform { low: -0.5, high: 0.5 };
        let b = f.add_arg(TensorType::fixed(&[3], DType::F32).into(), Some("b"), param_attrs(&init));
        let mut bld = Builder::at_entry(&mut f);
        let y = bld.op(OpKind::Add, &[x, b], Attrs::new()).unwrap();
        bld.ret(&[y]);
        set_output_names(&mut f, &["y"]);
        let s = Signature::of(&f).unwrap();
        assert_eq!(s.inputs().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["x"]);
        assert_eq!(s.params().map(|(a, i)| (a.name.as_str(), i.clone())).collect::<Vec<_>>(), [("b", init)]);
        assert_eq!(s.outputs[0].0, "y");
    }

    #[test]
    fn every_init_round_trips_through_its_attribute() {
        for i in [Init::Zeros, Init::Ones, Init::Constant(0.5), Init::Uniform { low: -1.0, high: 2.0 }, Init::Normal { mean: 0.0, std: 0.02 }] {
            assert_eq!(Init::from_attr(&i.to_attr()).unwrap(), i);
        }
    }
}
