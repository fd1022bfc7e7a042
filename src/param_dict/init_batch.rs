//! Initialising many parameters in one call with built-in fills (zeros, a
//! constant, uniform, normal). Per parameter, `initialize` costs an
//! allocation, a fill and (on a GPU) an allocation, a copy and a wait; here
//! the values of all parameters are written into one host slab by all cores
//! at once, and GPU contexts get them in one batched upload with gradients
//! from a zeroed arena. The values are the same as filling one by one: each
//! random fill draws from its own counter-based stream, numbered in order.

use rayon::prelude::*;

use super::{write, DictEntry, ParameterDict, SharedParameter};
use crate::context::{Context, DeviceType};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ndarray::NDArray;
use crate::parameter::{InitRequest, InitToken};
use crate::random::{fill_constant, Distribution, StreamKey};
use crate::storage::Buffer;

/// How Xavier's scale is derived from the fans of a weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanFactor {
    /// The mean of `fan_in` and `fan_out`.
    Avg,
    /// `fan_in`.
    In,
    /// `fan_out`.
    Out,
}

/// MXNet's `Xavier` (and `MSRAPrelu`, a gaussian Xavier with magnitude
/// `2 / (1 + slope²)`): a uniform or normal fill whose scale
/// `sqrt(magnitude / factor)` depends on the weight's shape. The one place
/// that scale is computed; invalid names are kept as `None` so that errors
/// come when filling, in MXNet's order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Xavier {
    /// `Some(false)` uniform, `Some(true)` gaussian, `None` an unknown `rnd_type`.
    pub gaussian: Option<bool>,
    /// `None`: an unknown `factor_type`.
    pub factor: Option<FanFactor>,
    /// Scale of the random numbers.
    pub magnitude: f64,
}

impl Xavier {
    /// From MXNet's arguments (`'uniform'`/`'gaussian'`, `'avg'`/`'in'`/`'out'`).
    pub fn new(rnd_type: &str, factor_type: &str, magnitude: f64) -> Xavier {
        Xavier {
            gaussian: match rnd_type {
                "uniform" => Some(false),
                "gaussian" => Some(true),
                _ => None,
            },
            factor: match factor_type {
                "avg" => Some(FanFactor::Avg),
                "in" => Some(FanFactor::In),
                "out" => Some(FanFactor::Out),
                _ => None,
            },
            magnitude,
        }
    }

    /// The distribution for weight `name` of `shape` (`(out, in, *kernel)`:
    /// `fan_in = in * prod(kernel)`, `fan_out = out * prod(kernel)`), with
    /// MXNet's checks in MXNet's order.
    pub fn distribution(&self, name: &str, shape: &[usize]) -> Result<Distribution> {
        if shape.len() < 2 {
            return Err(Error::invalid(format!(
                "Xavier initializer cannot be applied to vector {name}. It requires at least 2D."
            )));
        }
        let hw_scale: usize = shape[2..].iter().product();
        let (fan_in, fan_out) = ((shape[1] * hw_scale) as f64, (shape[0] * hw_scale) as f64);
        let factor = match self.factor {
            Some(FanFactor::Avg) => (fan_in + fan_out) / 2.0,
            Some(FanFactor::In) => fan_in,
            Some(FanFactor::Out) => fan_out,
            None => return Err(Error::invalid("Incorrect factor type")),
        };
        if factor == 0.0 {
            return Err(Error::invalid(format!(
                "Xavier initializer cannot be applied to {name} of shape {}",
                crate::parameter::shape_str(shape)
            )));
        }
        let scale = (self.magnitude / factor).sqrt();
        match self.gaussian {
            Some(false) => Ok(Distribution::Uniform {
                low: -scale,
                high: scale,
            }),
            Some(true) => Ok(Distribution::Normal {
                mean: 0.0,
                std: scale,
            }),
            None => Err(Error::invalid("Unknown random type")),
        }
    }
}

/// A built-in fill.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fill {
    /// All zeros (any dtype).
    Zeros,
    /// One value everywhere (float dtypes).
    Constant(f64),
    /// Random values (float dtypes), each parameter from its own stream.
    Random(Distribution),
    /// Xavier's random values, scaled by the parameter's shape (float dtypes).
    Xavier(Xavier),
}

impl Fill {
    /// The fill for a parameter of `shape` and `dtype`, with Xavier's scale
    /// resolved; `None` when it does not apply (a fill other than zeros on a
    /// non-float dtype, Xavier on a shape it rejects, invalid bounds): the
    /// caller's general path then reports what is wrong.
    pub fn resolve(self, name: &str, shape: &[usize], dtype: DType) -> Option<Fill> {
        if !(matches!(self, Fill::Zeros) || dtype.is_float()) {
            return None;
        }
        let fill = match self {
            Fill::Xavier(x) => Fill::Random(x.distribution(name, shape).ok()?),
            other => other,
        };
        match fill {
            Fill::Random(d) if !d.is_valid() => None,
            other => Some(other),
        }
    }
}

/// Where random fills take their streams from: a seed and a block of
/// consecutive stream numbers, reserved once the number is known.
pub trait StreamSource {
    /// Reserves `count` streams; returns the seed and the first stream.
    fn reserve(&mut self, count: u64) -> (u64, u64);
}

/// A [`StreamSource`] counting streams up from `next` under one seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamCounter {
    /// The seed.
    pub seed: u64,
    /// The next stream to hand out.
    pub next: u64,
}

impl StreamSource for StreamCounter {
    fn reserve(&mut self, count: u64) -> (u64, u64) {
        let first = self.next;
        self.next += count;
        (self.seed, first)
    }
}

/// One parameter of a batched initialisation.
pub struct FillRequest {
    /// The parameter's position in the dict.
    pub position: usize,
    /// Kept with a deferred request (what finishing it needs).
    pub token: Option<InitToken>,
    /// Its fill.
    pub fill: Fill,
}

/// What a batched initialisation did.
#[derive(Debug)]
pub struct BatchOutcome {
    /// One state per handled request, in order. Fewer states than requests
    /// means the next request's fill does not suit its dtype: that parameter
    /// and the ones after it were not touched.
    pub states: Vec<InitRequest>,
    /// Random streams drawn (reserved from the stream source).
    pub streams_used: u64,
}

/// A parameter whose values are to be filled.
struct Pending<'a> {
    param: &'a SharedParameter,
    shape: Vec<usize>,
    dtype: DType,
    fill: Fill,
    stream: u64,
}

impl<E: DictEntry> ParameterDict<E> {
    /// Initialises the parameters of `requests` on `ctxs` in order, as many
    /// single initialisations would (already initialised ones are skipped
    /// unless `force_reinit`; unknown shapes are deferred), drawing one
    /// random stream per random fill, in order, from `streams`. An error
    /// stops at its parameter: the ones before it are initialised.
    pub fn initialize_filled(
        &self,
        ctxs: &[Context],
        force_reinit: bool,
        requests: Vec<FillRequest>,
        streams: &mut dyn StreamSource,
    ) -> Result<BatchOutcome> {
        let mut states = Vec::with_capacity(requests.len());
        let mut pending = Vec::new();
        let mut stream = 0;
        let mut stopped = None;
        for req in requests {
            let param = match self.params.get_index(req.position) {
                Some((_, p)) => p.parameter(),
                None => {
                    stopped = Some(Error::invalid(format!(
                        "no parameter at position {} of {}",
                        req.position,
                        self.params.len()
                    )));
                    break;
                }
            };
            let mut p = write(param);
            let shape = p.shape().map(<[usize]>::to_vec).unwrap_or_default();
            let known = crate::parameter::shape_is_known(p.shape());
            let fill = match req.fill {
                // Xavier's scale needs the shape: resolved here when known,
                // else by the caller when the deferred initialisation finishes.
                Fill::Xavier(_) if !known => Some(req.fill),
                f => f.resolve(p.name(), &shape, p.dtype()),
            };
            let Some(fill) = fill else {
                break;
            };
            let state = match p.request_init(ctxs, req.token, force_reinit) {
                Ok(s) => s,
                Err(e) => {
                    stopped = Some(e);
                    break;
                }
            };
            if state == InitRequest::Ready {
                let shape = p.shape().map(<[usize]>::to_vec).unwrap_or_default();
                let dtype = p.dtype();
                let random = matches!(fill, Fill::Random(_)) && shape.iter().product::<usize>() > 0;
                pending.push(Pending {
                    param,
                    shape,
                    dtype,
                    fill,
                    stream,
                });
                if random {
                    stream += 1;
                }
            }
            states.push(state);
        }
        let (seed, first_stream) = streams.reserve(stream);
        let finished = self.fill_and_place(&pending, ctxs, seed, first_stream);
        if let Err(e) = finished {
            // As a failed single initialisation: uninitialised, not deferred.
            for item in &pending {
                let mut p = write(item.param);
                if p.list_data().is_err() {
                    let _ = p.take_deferred();
                }
            }
            return Err(e);
        }
        match stopped {
            Some(e) => Err(e),
            None => Ok(BatchOutcome {
                states,
                streams_used: stream,
            }),
        }
    }

    /// Fills the pending parameters' values into one host slab (in parallel)
    /// and finishes their initialisation on `ctxs`.
    fn fill_and_place(
        &self,
        pending: &[Pending<'_>],
        ctxs: &[Context],
        seed: u64,
        first_stream: u64,
    ) -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let lens = pending
            .iter()
            .map(|p| crate::ndarray::checked_nbytes(&p.shape, p.dtype))
            .collect::<Result<Vec<_>>>()?;
        let values = Buffer::slab(&lens)?
            .into_iter()
            .zip(pending)
            .map(|(b, p)| NDArray::from_buffer(b, p.shape.clone(), p.dtype, Context::cpu(0)))
            .collect::<Result<Vec<_>>>()?;
        values
            .par_iter()
            .zip(pending)
            .try_for_each(|(arr, p)| -> Result<()> {
                let mut bytes = arr.buffer().write()?;
                match p.fill {
                    Fill::Zeros => bytes.fill(0),
                    Fill::Constant(v) => fill_constant(&mut bytes, p.dtype, v)?,
                    Fill::Random(dist) => dist.fill_bytes(
                        &mut bytes,
                        p.dtype,
                        StreamKey::new(seed, first_stream + p.stream),
                    )?,
                    Fill::Xavier(_) => {
                        return Err(Error::invalid("Xavier fill without a known shape"))
                    }
                }
                Ok(())
            })?;
        if !ctxs.iter().any(|c| c.device_type == DeviceType::Gpu) {
            for (arr, p) in values.into_iter().zip(pending) {
                let mut g = write(p.param);
                let record = g.take_deferred()?;
                let c = record.map_or_else(|| ctxs.to_vec(), |r| r.ctx);
                g.init_from_owned(arr, &c)?;
            }
            return Ok(());
        }
        let params: Vec<&SharedParameter> = pending.iter().map(|p| p.param).collect();
        super::place_batch(&params, values, ctxs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::param_dict::ParamAttrs;
    use crate::DType;

    fn dict(n: usize) -> ParameterDict {
        let mut pd = ParameterDict::new("net_", None);
        for i in 0..n {
            let attrs = ParamAttrs {
                shape: Some(vec![3, 1 + i % 4]),
                ..Default::default()
            };
            pd.get(&format!("w{i}"), &attrs).expect("get");
        }
        pd
    }

    fn nth(pd: &ParameterDict, i: usize) -> &SharedParameter {
        pd.parameters().nth(i).expect("parameter")
    }

    fn host_values(pd: &ParameterDict) -> Vec<Vec<u8>> {
        pd.parameters()
            .map(|p| {
                write(p)
                    .data(None)
                    .map(|d| d.buffer().read().to_vec())
                    .unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn batched_fills_match_single_fills_and_number_streams_in_order() {
        let fills = [
            Fill::Random(Distribution::Uniform {
                low: -1.0,
                high: 1.0,
            }),
            Fill::Zeros,
            Fill::Constant(0.25),
            Fill::Random(Distribution::Normal {
                mean: 0.0,
                std: 2.0,
            }),
        ];
        let pd = dict(9);
        let requests = (0..9)
            .map(|i| FillRequest {
                position: i,
                token: None,
                fill: fills[i % 4],
            })
            .collect();
        let out = pd
            .initialize_filled(
                &[Context::cpu(0)],
                false,
                requests,
                &mut StreamCounter { seed: 7, next: 100 },
            )
            .expect("batch");
        assert_eq!(out.states.len(), 9);
        assert!(out.states.iter().all(|s| *s == InitRequest::Ready));
        assert_eq!(out.streams_used, 5); // positions 0, 3, 4, 7, 8
        let got = host_values(&pd);
        // The same values one parameter at a time.
        let mut stream = 100;
        for (i, bytes) in got.iter().enumerate() {
            let p = nth(&pd, i);
            let shape = write(p).shape().expect("shape").to_vec();
            let want = NDArray::zeros(&shape, DType::Float32, Context::cpu(0)).expect("zeros");
            {
                let mut w = want.buffer().write().expect("write");
                match fills[i % 4] {
                    Fill::Zeros => {}
                    Fill::Constant(v) => fill_constant(&mut w, DType::Float32, v).expect("c"),
                    Fill::Random(d) => {
                        d.fill_bytes(&mut w, DType::Float32, StreamKey::new(7, stream))
                            .expect("r");
                        stream += 1;
                    }
                    Fill::Xavier(_) => unreachable!("not among the test fills"),
                }
            }
            assert_eq!(&want.buffer().read()[..], &bytes[..], "parameter {i}");
            assert!(write(p).grad(None).is_ok());
        }
        // Already initialised: skipped, no stream drawn.
        let again = pd
            .initialize_filled(
                &[Context::cpu(0)],
                false,
                vec![FillRequest {
                    position: 0,
                    token: None,
                    fill: fills[0],
                }],
                &mut StreamCounter { seed: 7, next: 0 },
            )
            .expect("again");
        assert_eq!(again.states, vec![InitRequest::AlreadyInitialized]);
        assert_eq!(again.streams_used, 0);
        assert_eq!(host_values(&pd), got);
    }

    #[test]
    fn unsuitable_fill_stops_untouched_and_errors_keep_earlier_ones() {
        let mut pd = dict(2);
        let attrs = ParamAttrs {
            shape: Some(vec![4]),
            dtype: Some(DType::Int32),
            ..Default::default()
        };
        pd.get("ints", &attrs).expect("get");
        let attrs = ParamAttrs {
            shape: Some(vec![0, 4]),
            ..Default::default()
        };
        pd.get("unknown", &attrs).expect("get");
        let random = Fill::Random(Distribution::Uniform {
            low: 0.0,
            high: 1.0,
        });
        let req = |position, fill| FillRequest {
            position,
            token: None,
            fill,
        };
        let out = pd
            .initialize_filled(
                &[Context::cpu(0)],
                false,
                vec![req(0, random), req(2, random), req(1, random)],
                &mut StreamCounter { seed: 1, next: 0 },
            )
            .expect("batch");
        assert_eq!(out.states, vec![InitRequest::Ready]);
        assert!(write(nth(&pd, 2)).data(None).is_err(), "untouched");
        assert!(write(nth(&pd, 1)).data(None).is_err(), "untouched");
        // Zeros suit ints; an unknown shape without deferral is an error after
        // the earlier parameters are done.
        let err = pd
            .initialize_filled(
                &[Context::cpu(0)],
                false,
                vec![req(2, Fill::Zeros), req(1, random), req(3, random)],
                &mut StreamCounter { seed: 1, next: 0 },
            )
            .expect_err("invalid shape");
        assert!(err.to_string().contains("invalid shape"), "{err}");
        assert!(write(nth(&pd, 2)).data(None).is_ok());
        assert!(write(nth(&pd, 1)).data(None).is_ok());
        assert!(write(nth(&pd, 3)).data(None).is_err());
    }

    #[test]
    fn xavier_scale_follows_mxnet() {
        let x = Xavier::new("uniform", "avg", 3.0);
        // fan_in = 4 * 9, fan_out = 2 * 9: factor 27, scale sqrt(3 / 27).
        let d = x.distribution("w", &[2, 4, 3, 3]).expect("2-D");
        let s = (3.0f64 / 27.0).sqrt();
        assert_eq!(d, Distribution::Uniform { low: -s, high: s });
        let g = Xavier::new("gaussian", "in", 2.0).distribution("w", &[5, 8]);
        assert_eq!(
            g.expect("2-D"),
            Distribution::Normal {
                mean: 0.0,
                std: 0.5
            }
        );
        let msg = |r: Result<Distribution>| r.expect_err("invalid").to_string();
        assert!(msg(x.distribution("b", &[3])).contains("vector b"));
        assert!(
            msg(Xavier::new("uniform", "sideways", 1.0).distribution("w", &[2, 2]))
                .contains("Incorrect factor type")
        );
        let fan_in = Xavier::new("uniform", "in", 3.0);
        assert!(msg(fan_in.distribution("w", &[3, 0])).contains("of shape (3, 0)"));
        assert!(
            msg(Xavier::new("poisson", "avg", 1.0).distribution("w", &[2, 2]))
                .contains("Unknown random type")
        );
        // Resolved against the parameter; None where the general path decides.
        let f = Fill::Xavier(x);
        assert!(f.resolve("w", &[2, 2], DType::Int32).is_none());
        assert!(Fill::Xavier(Xavier::new("uniform", "avg", -1.0))
            .resolve("w", &[2, 2], DType::Float32)
            .is_none());
        assert!(matches!(
            f.resolve("w", &[2, 2], DType::Float16),
            Some(Fill::Random(_))
        ));
    }
}
