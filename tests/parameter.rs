//! Parameter: grad_req state machine, context map, deferred init, reduce, cast, grads.

use mxparams::{Context, DType, Error, GradReq, Parameter};

mod common;
use common::{f32s, values};

const CTXS: [Context; 2] = [Context::cpu(0), Context::cpu(1)];

fn ready(name: &str) -> Parameter {
    let mut p = Parameter::new(name).with_shape(&[2, 2]);
    p.init_from_host(&f32s(&[1.0, 2.0, 3.0, 4.0], &[2, 2]), &CTXS)
        .expect("init");
    p
}

#[test]
fn uninitialised_access_errors() {
    let p = Parameter::new("w").with_shape(&[2]);
    assert!(
        matches!(p.data(None), Err(Error::NotInitialized(m)) if m.contains("'w' has not been initialized"))
    );
    assert!(matches!(p.grad(None), Err(Error::NotInitialized(_))));
    assert!(matches!(p.list_ctx(), Err(Error::NotInitialized(_))));
    assert!(matches!(p.reduce(), Err(Error::NotInitialized(_))));
    let mut p = p;
    assert!(matches!(p.reset_ctx(&CTXS), Err(Error::NotInitialized(_))));
    assert!(matches!(
        p.set_data(&f32s(&[1.0, 2.0], &[2])),
        Err(Error::NotInitialized(_))
    ));
}

#[test]
fn context_map_and_errors() {
    let p = ready("w");
    assert_eq!(p.list_ctx().expect("ctx"), CTXS.to_vec());
    assert_eq!(
        p.data(Some(Context::cpu_pinned(1)))
            .expect("slot")
            .context(),
        Context::cpu(1)
    );
    let e = p.data(Some(Context::cpu(2))).expect_err("not there");
    assert!(
        matches!(&e, Error::NotOnContext(m) if m.contains("was not initialized on context cpu(2). It was only initialized on [cpu(0), cpu(1)].")),
        "{e}"
    );
    // With two copies, None means the current context.
    assert_eq!(p.data(None).expect("current").context(), Context::cpu(0));
    assert_eq!(p.list_data().expect("data").len(), 2);
    assert_eq!(
        values(&p.grad(Some(Context::cpu(1))).expect("grad")),
        vec![0.0; 4]
    );
}

#[test]
fn grad_req_state_machine() {
    let mut p = ready("w");
    let v0 = p.version();
    p.set_grad_req(GradReq::Null).expect("null");
    assert!(p.version() != v0);
    assert!(matches!(p.grad(None), Err(Error::NoGradient(m)) if m.contains("grad_req='null'")));
    assert!(matches!(p.list_grad(), Err(Error::NoGradient(_))));
    assert!(matches!(
        p.deliver_grad(None, &f32s(&[1.0; 4], &[2, 2])),
        Err(Error::NoGradient(_))
    ));
    p.set_grad_req(GradReq::Add).expect("add");
    assert_eq!(p.list_grad().expect("grads").len(), 2);
    let g = f32s(&[1.0, 1.0, 2.0, 2.0], &[2, 2]);
    p.deliver_grad(Some(Context::cpu(1)), &g).expect("add");
    p.deliver_grad(Some(Context::cpu(1)), &g).expect("add");
    assert_eq!(
        values(&p.grad(Some(Context::cpu(1))).expect("g")),
        vec![2.0, 2.0, 4.0, 4.0]
    );
    p.set_grad_req(GradReq::Write).expect("write");
    p.deliver_grad(Some(Context::cpu(1)), &g).expect("write");
    assert_eq!(
        values(&p.grad(Some(Context::cpu(1))).expect("g")),
        vec![1.0, 1.0, 2.0, 2.0]
    );
    let bytes: Vec<u8> = [5.0f32; 4].iter().flat_map(|x| x.to_le_bytes()).collect();
    p.deliver_grad_bytes(Some(Context::cpu(0)), &bytes)
        .expect("bytes");
    assert_eq!(
        values(&p.grad(Some(Context::cpu(0))).expect("g")),
        vec![5.0; 4]
    );
    p.zero_grad().expect("zero");
    assert_eq!(
        values(&p.grad(Some(Context::cpu(0))).expect("g")),
        vec![0.0; 4]
    );
    // Not differentiable pins null.
    let mut q = Parameter::new("c")
        .with_differentiable(false)
        .with_shape(&[1]);
    q.set_grad_req(GradReq::Write).expect("ignored");
    assert_eq!(q.grad_req(), GradReq::Null);
    // Uninitialised: only recorded.
    let mut r = Parameter::new("r");
    r.set_grad_req(GradReq::Add).expect("record");
    assert_eq!(r.grad_req(), GradReq::Add);
}

#[test]
fn shape_fill_in_never_contradicts() {
    let mut p = Parameter::new("w").with_shape(&[0, 3]);
    p.set_shape(&[4, 3]).expect("fill");
    assert_eq!(p.shape(), Some(&[4, 3][..]));
    let e = p.set_shape(&[5, 3]).expect_err("conflict");
    assert!(
        matches!(&e, Error::ShapeMismatch(m) if m == "Expected shape (5, 3) is incompatible with given shape (4, 3)."),
        "{e}"
    );
    assert!(p.set_shape(&[4]).is_err());
    assert_eq!(p.to_string(), "Parameter w (shape=(4, 3), dtype=float32)");
}

#[test]
fn deferred_init() {
    let mut p = Parameter::new("w")
        .with_shape(&[0, 2])
        .with_allow_deferred_init(true);
    let r = p.request_init(&CTXS, None, false).expect("deferred");
    assert_eq!(r, mxparams::parameter::InitRequest::Deferred);
    assert!(matches!(p.data(None), Err(Error::DeferredInit(_))));
    assert_eq!(p.list_ctx().expect("deferred ctx"), CTXS.to_vec());
    assert!(
        matches!(p.finish_deferred_init(), Err(Error::InvalidArgument(m)) if m.contains("invalid shape: (0, 2)"))
    );
    p.set_shape(&[1, 2]).expect("shape");
    assert!(matches!(p.data(None), Err(Error::DeferredInit(_))));
    p.set_data(&f32s(&[7.0, 8.0], &[1, 2])).expect("kept");
    p.finish_deferred_init().expect("finish");
    assert_eq!(
        values(&p.data(Some(Context::cpu(1))).expect("d")),
        vec![7.0, 8.0]
    );
    // Unknown shape without deferral is an invalid argument.
    let mut q = Parameter::new("q").with_shape(&[0]);
    assert!(
        matches!(q.request_init(&CTXS, None, false), Err(Error::InvalidArgument(m)) if m.contains("invalid shape: (0,)."))
    );
    // Fill callback gets the token.
    let mut z = Parameter::new("z").with_shape(&[2]);
    z.request_init(&CTXS[..1], Some(Box::new(3.5f32)), false)
        .expect("ready");
    z.finish_deferred_init_with(|arr, tok| {
        let v = *tok.and_then(|t| t.downcast_ref::<f32>()).expect("token");
        arr.assign(&f32s(&[v, v], &[2]))
    })
    .expect("fill");
    assert_eq!(values(&z.data(None).expect("d")), vec![3.5, 3.5]);
    assert_eq!(
        z.request_init(&CTXS, None, false).expect("again"),
        mxparams::parameter::InitRequest::AlreadyInitialized
    );
}

#[test]
fn reduce_reset_ctx_and_set_data() {
    let mut p = ready("w");
    p.data(Some(Context::cpu(1)))
        .expect("d")
        .assign(&f32s(&[3.0, 4.0, 5.0, 6.0], &[2, 2]))
        .expect("assign");
    assert_eq!(values(&p.reduce().expect("mean")), vec![2.0, 3.0, 4.0, 5.0]);
    p.reset_ctx(&[Context::cpu(3)]).expect("reset");
    assert_eq!(p.list_ctx().expect("ctx"), vec![Context::cpu(3)]);
    assert_eq!(values(&p.data(None).expect("d")), vec![2.0, 3.0, 4.0, 5.0]);
    assert_eq!(values(&p.grad(None).expect("g")), vec![0.0; 4]);
    let f64s = mxparams::convert::cast(&f32s(&[9.0; 4], &[2, 2]), DType::Float64).expect("cast");
    p.set_data(&f64s).expect("converted");
    assert_eq!(values(&p.data(None).expect("d")), vec![9.0; 4]);
    assert!(matches!(
        p.set_data(&f32s(&[1.0; 6], &[2, 3])),
        Err(Error::ShapeMismatch(_))
    ));
}

#[test]
fn cast_converts_data_and_grads() {
    for dt in mxparams::dtype::ALL_DTYPES {
        let mut p = ready("w");
        p.cast(dt).expect("cast");
        assert_eq!(p.dtype(), dt);
        assert_eq!(p.data(None).expect("d").dtype(), dt);
        assert_eq!(p.grad(None).expect("g").dtype(), dt);
        if dt != DType::Bool {
            assert_eq!(
                values(&p.data(None).expect("d")),
                vec![1.0, 2.0, 3.0, 4.0],
                "{dt}"
            );
        }
    }
}

#[test]
fn init_from_owned_moves_into_the_first_host_context() {
    let mut p = Parameter::new("w").with_shape(&[0, 2]);
    let data = f32s(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let ptr = data.buffer().as_ptr();
    p.init_from_owned(data, &[Context::cpu(1), Context::cpu(0)])
        .expect("init");
    assert_eq!(p.shape(), Some(&[2, 2][..]));
    let first = p.data(Some(Context::cpu(1))).expect("cpu(1)");
    assert_eq!(
        first.buffer().as_ptr(),
        ptr,
        "no copy for the first host context"
    );
    assert_eq!(first.context(), Context::cpu(1));
    let second = p.data(Some(Context::cpu(0))).expect("cpu(0)");
    assert_ne!(second.buffer().as_ptr(), ptr);
    assert_eq!(values(&second), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(values(&p.grad(None).expect("grad")), [0.0; 4]);
}

#[test]
fn init_from_owned_converts_other_dtypes_by_copy() {
    let mut p = Parameter::new("w")
        .with_shape(&[2])
        .with_dtype(DType::Float16);
    p.init_from_owned(f32s(&[1.5, 2.5], &[2]), &CTXS)
        .expect("init");
    let d = p.data(Some(Context::cpu(0))).expect("data");
    assert_eq!(d.dtype(), DType::Float16);
    assert_eq!(values(&d), [1.5, 2.5]);
    assert!(p.init_from_owned(f32s(&[1.0], &[1]), &CTXS).is_err());
}
