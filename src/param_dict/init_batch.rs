//! Initialising many parameters in one call with built-in fills (zeros, a
//! constant, uniform, normal). Per parameter, `initialize` costs an
//! allocation, a fill and (on a GPU) an allocation, a copy and a wait; here
//! the values of all parameters are written into one host slab by all cores
//! at once, and GPU contexts get them in one batched upload with gradients
//! from a zeroed arena. The values are the same as filling one by one: each
//! random fill draws from its own counter-based stream, numbered in order.

use rayon::prelude::*;

use super::{write, ParameterDict, SharedParameter};
use crate::context::{Context, DeviceType};
use crate::error::{Error, Result};
use crate::ndarray::NDArray;
use crate::parameter::{InitRequest, InitToken};
use crate::random::{fill_constant, Distribution, StreamKey};
use crate::storage::Buffer;

/// A built-in fill.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fill {
    /// All zeros (any dtype).
    Zeros,
    /// One value everywhere (float dtypes).
    Constant(f64),
    /// Random values (float dtypes), each parameter from its own stream.
    Random(Distribution),
}

impl Fill {
    fn supports(self, float: bool) -> bool {
        matches!(self, Fill::Zeros) || float
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
    /// Random streams drawn (numbered from `first_stream`).
    pub streams_used: u64,
}

/// A parameter whose values are to be filled.
struct Pending<'a> {
    param: &'a SharedParameter,
    shape: Vec<usize>,
    dtype: crate::DType,
    fill: Fill,
    stream: u64,
}

impl ParameterDict {
    /// Initialises the parameters of `requests` on `ctxs` in order, as many
    /// single initialisations would (already initialised ones are skipped
    /// unless `force_reinit`; unknown shapes are deferred), drawing random
    /// streams `first_stream, first_stream + 1, ...` of `seed`. An error
    /// stops at its parameter: the ones before it are initialised.
    pub fn initialize_filled(
        &self,
        ctxs: &[Context],
        force_reinit: bool,
        requests: Vec<FillRequest>,
        seed: u64,
        first_stream: u64,
    ) -> Result<BatchOutcome> {
        let mut states = Vec::with_capacity(requests.len());
        let mut pending = Vec::new();
        let mut stream = first_stream;
        let mut stopped = None;
        for req in requests {
            let param = match self.params.get(req.position) {
                Some(p) => p,
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
            if !req.fill.supports(p.dtype().is_float()) {
                break;
            }
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
                let random =
                    matches!(req.fill, Fill::Random(_)) && shape.iter().product::<usize>() > 0;
                pending.push(Pending {
                    param,
                    shape,
                    dtype,
                    fill: req.fill,
                    stream,
                });
                if random {
                    stream += 1;
                }
            }
            states.push(state);
        }
        let finished = self.fill_and_place(&pending, ctxs, seed);
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
                streams_used: stream - first_stream,
            }),
        }
    }

    /// Fills the pending parameters' values into one host slab (in parallel)
    /// and finishes their initialisation on `ctxs`.
    fn fill_and_place(&self, pending: &[Pending<'_>], ctxs: &[Context], seed: u64) -> Result<()> {
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
                    Fill::Random(dist) => {
                        dist.fill_bytes(&mut bytes, p.dtype, StreamKey::new(seed, p.stream))?
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

    fn host_values(pd: &ParameterDict) -> Vec<Vec<u8>> {
        pd.values()
            .iter()
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
            .initialize_filled(&[Context::cpu(0)], false, requests, 7, 100)
            .expect("batch");
        assert_eq!(out.states.len(), 9);
        assert!(out.states.iter().all(|s| *s == InitRequest::Ready));
        assert_eq!(out.streams_used, 5); // positions 0, 3, 4, 7, 8
        let got = host_values(&pd);
        // The same values one parameter at a time.
        let mut stream = 100;
        for (i, bytes) in got.iter().enumerate() {
            let p = &pd.values()[i];
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
                7,
                0,
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
                1,
                0,
            )
            .expect("batch");
        assert_eq!(out.states, vec![InitRequest::Ready]);
        assert!(write(&pd.values()[2]).data(None).is_err(), "untouched");
        assert!(write(&pd.values()[1]).data(None).is_err(), "untouched");
        // Zeros suit ints; an unknown shape without deferral is an error after
        // the earlier parameters are done.
        let err = pd
            .initialize_filled(
                &[Context::cpu(0)],
                false,
                vec![req(2, Fill::Zeros), req(1, random), req(3, random)],
                1,
                0,
            )
            .expect_err("invalid shape");
        assert!(err.to_string().contains("invalid shape"), "{err}");
        assert!(write(&pd.values()[2]).data(None).is_ok());
        assert!(write(&pd.values()[1]).data(None).is_ok());
        assert!(write(&pd.values()[3]).data(None).is_err());
    }
}
