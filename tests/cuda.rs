//! CUDA contexts through the public API. Without a usable driver (CI) the
//! no-driver behaviour is checked: `num_gpus() == 0`, GPU requests fail with
//! `CudaUnavailable` naming the context, `cpu_pinned` still works. The device
//! tests need a GPU, so they are `#[ignore]`d: on a GPU machine run them with
//! `cargo test --features cuda --test cuda -- --include-ignored` (they fail,
//! rather than pass, when no device is found).

use mxparams::num_gpus;
use mxparams::{
    Context, DType, Error, GradReq, LoadOptions, NDArray, ParamAttrs, Parameter, ParameterDict,
};

fn f32s(v: &[f32], shape: &[usize], ctx: Context) -> NDArray {
    let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    NDArray::from_bytes(&b, shape, DType::Float32, ctx).expect("array")
}

fn values(a: &NDArray) -> Vec<f32> {
    let g = a.buffer().try_read().expect("readable");
    g.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn require_gpu() {
    assert!(num_gpus() > 0, "this test needs a CUDA device");
}

#[test]
fn without_a_driver_gpu_requests_fail_cleanly() {
    if num_gpus() > 0 {
        // With a device, the same request succeeds instead.
        let a = NDArray::zeros(&[2], DType::Float32, Context::gpu(0)).expect("gpu(0) array");
        assert_eq!(values(&a), [0.0, 0.0]);
        return;
    }
    let err = NDArray::zeros(&[2], DType::Float32, Context::gpu(0)).expect_err("no GPU");
    assert!(matches!(err, Error::CudaUnavailable(_)), "{err}");
    assert!(err.to_string().contains("gpu(0)"), "{err}");
    let host = f32s(&[1.0, 2.0], &[2], Context::cpu(0));
    assert!(matches!(
        host.copy_to(Context::gpu(0)),
        Err(Error::CudaUnavailable(_))
    ));
    let mut p = Parameter::new("w").with_shape(&[2]);
    assert!(matches!(
        p.init_from_host(&host, &[Context::gpu(0)]),
        Err(Error::CudaUnavailable(_))
    ));
    assert!(!p.is_initialized());
    // cpu_pinned falls back to ordinary host memory.
    let pinned = host.copy_to(Context::cpu_pinned(0)).expect("pinned copy");
    assert_eq!(values(&pinned), [1.0, 2.0]);
    assert!(!pinned.buffer().is_pinned());
}

#[test]
#[ignore = "needs a CUDA device"]
fn device_round_trips() {
    require_gpu();
    let host = f32s(&[1.0, -2.0, 3.5, 0.0], &[2, 2], Context::cpu(0));
    let dev = host.copy_to(Context::gpu(0)).expect("H2D");
    assert!(dev.buffer().is_device());
    assert_eq!(dev.context(), Context::gpu(0));
    assert_eq!(values(&dev), [1.0, -2.0, 3.5, 0.0]);
    let dev2 = dev.copy_to(Context::gpu(0)).expect("D2D");
    assert!(!dev2.buffer().same_storage(dev.buffer()));
    let back = dev2.copy_to(Context::cpu(0)).expect("D2H");
    assert!(!back.buffer().is_device());
    assert_eq!(values(&back), [1.0, -2.0, 3.5, 0.0]);
    let z = NDArray::zeros(&[3], DType::Float64, Context::gpu(0)).expect("zeros");
    assert!(z.buffer().try_read().expect("read").iter().all(|&b| b == 0));
    dev2.assign(&f32s(&[9.0; 4], &[2, 2], Context::cpu(0)))
        .expect("assign");
    assert_eq!(values(&dev2), [9.0; 4]);
    let cast = mxparams::convert::cast(&dev, DType::Float64).expect("cast");
    assert_eq!(cast.context(), Context::gpu(0));
    let pinned = dev.copy_to(Context::cpu_pinned(0)).expect("pinned");
    assert!(pinned.buffer().is_pinned());
    assert_eq!(values(&pinned), [1.0, -2.0, 3.5, 0.0]);
    let empty = NDArray::zeros(&[0], DType::Float32, Context::gpu(0)).expect("empty");
    assert_eq!(empty.copy_to(Context::cpu(0)).expect("D2H").nbytes(), 0);
}

#[test]
#[ignore = "needs a CUDA device"]
fn parameters_on_gpus() {
    require_gpu();
    let mut ctxs = vec![Context::gpu(0), Context::cpu(0)];
    if num_gpus() > 1 {
        ctxs.push(Context::gpu(1));
    }
    let mut p = Parameter::new("w").with_shape(&[2]);
    p.init_from_host(&f32s(&[1.0, 3.0], &[2], Context::cpu(0)), &ctxs)
        .expect("init");
    for (a, c) in p.list_data().expect("data").iter().zip(&ctxs) {
        assert_eq!(a.context(), *c);
        assert_eq!(values(a), [1.0, 3.0]);
    }
    p.set_grad_req(GradReq::Add).expect("add");
    let g = f32s(&[0.5, 0.5], &[2], Context::cpu(0));
    p.deliver_grad(Some(Context::gpu(0)), &g).expect("deliver");
    p.deliver_grad(Some(Context::gpu(0)), &g).expect("deliver");
    assert_eq!(
        values(&p.grad(Some(Context::gpu(0))).expect("grad")),
        [1.0, 1.0]
    );
    p.zero_grad().expect("zero");
    assert_eq!(
        values(&p.grad(Some(Context::gpu(0))).expect("grad")),
        [0.0, 0.0]
    );
    p.set_data(&f32s(&[2.0, 4.0], &[2], Context::cpu(0)))
        .expect("set");
    assert_eq!(values(&p.reduce().expect("reduce")), [2.0, 4.0]);
    p.reset_ctx(&[Context::gpu(0)]).expect("reset");
    assert_eq!(values(&p.data(None).expect("data")), [2.0, 4.0]);
}

#[test]
#[ignore = "needs a CUDA device"]
fn save_from_and_load_to_gpu() {
    require_gpu();
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("w.params");
    let attrs = ParamAttrs {
        shape: Some(vec![3]),
        ..ParamAttrs::default()
    };
    let mut pd = ParameterDict::new("net_", None);
    let w = pd.get("w", &attrs).expect("get");
    w.write()
        .expect("lock")
        .init_from_host(
            &f32s(&[1.0, 2.0, 3.0], &[3], Context::cpu(0)),
            &[Context::gpu(0)],
        )
        .expect("init");
    pd.save(&path, "").expect("save from GPU");
    let loaded = mxparams::format::load(&path).expect("load");
    assert_eq!(values(&loaded.arrays[0]), [1.0, 2.0, 3.0]);
    let on_gpu = mxparams::transfer::to_context(&loaded.arrays, Context::gpu(0)).expect("upload");
    assert_eq!(values(&on_gpu[0]), [1.0, 2.0, 3.0]);
    let mut other = ParameterDict::new("net_", None);
    let p = other.get("w", &attrs).expect("get");
    let opts = LoadOptions {
        ctx: Some(vec![Context::gpu(0)]),
        ..LoadOptions::default()
    };
    other.load(&path, &opts).expect("load to GPU");
    let d = p.read().expect("lock").data(None).expect("data");
    assert_eq!(d.context(), Context::gpu(0));
    assert_eq!(values(&d), [1.0, 2.0, 3.0]);
}

#[test]
#[ignore = "needs a CUDA device"]
fn allreduce_with_gpu_copies() {
    require_gpu();
    let mut ctxs: Vec<Context> = (0..num_gpus())
        .map(|i| Context::gpu(u32::try_from(i).expect("few GPUs")))
        .collect();
    ctxs.push(Context::cpu(0));
    let mut p = Parameter::new("w").with_shape(&[2]);
    p.init_from_host(&f32s(&[0.0, 0.0], &[2], Context::cpu(0)), &ctxs)
        .expect("init");
    for (i, &c) in ctxs.iter().enumerate() {
        let v = (i + 1) as f32;
        p.deliver_grad(Some(c), &f32s(&[v, -v], &[2], Context::cpu(0)))
            .expect("deliver");
    }
    p.allreduce_grads().expect("allreduce");
    let n = ctxs.len() as f32;
    let want = n * (n + 1.0) / 2.0;
    for g in p.list_grad().expect("grads") {
        assert_eq!(values(g), [want, -want]);
    }
}
