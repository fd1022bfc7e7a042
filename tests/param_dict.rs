//! ParameterDict: get/update policies, bulk operations, save/load policies.

use std::sync::Arc;

use mxparams::{
    Context, DType, DTypeSource, Error, GradReq, LoadOptions, ParamAttrs, ParameterDict,
};

mod common;
use common::{f32s, values};

fn shape(s: &[usize]) -> ParamAttrs {
    ParamAttrs {
        shape: Some(s.to_vec()),
        ..ParamAttrs::default()
    }
}

fn initialised(prefix: &str, n: usize, ctxs: &[Context]) -> ParameterDict {
    let mut d = ParameterDict::new(prefix, None);
    for i in 0..n {
        let p = d.get(&format!("w{i}"), &shape(&[3])).expect("get");
        let v = i as f32;
        mxparams::param_dict::write(&p)
            .init_from_host(&f32s(&[v, v + 0.5, v + 1.0], &[3]), ctxs)
            .expect("init");
    }
    d
}

#[test]
fn get_merges_and_conflicts() {
    let mut d = ParameterDict::new("net_", None);
    let a = d.get("w", &shape(&[0, 4])).expect("new");
    let b = d.get("w", &shape(&[3, 0])).expect("merge");
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(mxparams::param_dict::read(&a).shape(), Some(&[3, 4][..]));
    assert_eq!(d.keys().collect::<Vec<_>>(), ["net_w"]);
    let e = d.get("w", &shape(&[5, 4])).expect_err("conflict");
    assert!(
        matches!(&e, Error::AttributeConflict(m) if m.contains("attribute 'shape': desired '(5, 4)' vs stored '(3, 4)'")),
        "{e}"
    );
    let e = d
        .get(
            "w",
            &ParamAttrs {
                dtype: Some(DType::Float16),
                ..Default::default()
            },
        )
        .expect_err("dtype");
    assert!(e.to_string().contains("'dtype'"));
    d.get(
        "w",
        &ParamAttrs {
            dtype: Some(DType::Float32),
            grad_req: Some(GradReq::Write),
            ..Default::default()
        },
    )
    .expect("same");
    assert!(d
        .to_string()
        .starts_with("net_ (\n  Parameter net_w (shape=(3, 4), dtype=float32)\n)"));
}

#[test]
fn shared_and_update() {
    let base = Arc::new(std::sync::RwLock::new(ParameterDict::new("", None)));
    let w = base
        .write()
        .expect("lock")
        .get("w", &shape(&[2]))
        .expect("w");
    let mut child = ParameterDict::new("", Some(base.clone()));
    let w2 = child.get("w", &ParamAttrs::default()).expect("shared");
    assert!(Arc::ptr_eq(&w, &w2));
    let mut other = ParameterDict::new("", None);
    other.get("w", &shape(&[2])).expect("w");
    let e = child.update(&other).expect_err("different");
    assert!(matches!(e, Error::AttributeConflict(m) if m.contains("same name 'w'")));
    let mut third = ParameterDict::new("", None);
    third.update(&child).expect("update");
    assert!(Arc::ptr_eq(third.param("w").expect("w"), &w));
}

#[test]
fn bulk_operations() {
    let d = initialised("", 3, &[Context::cpu(0), Context::cpu(1)]);
    for p in d.parameters() {
        let p = mxparams::param_dict::read(p);
        p.deliver_grad(None, &f32s(&[1.0; 3], &[3])).expect("grad");
    }
    d.zero_grad().expect("zero");
    for p in d.parameters() {
        assert_eq!(
            values(&mxparams::param_dict::read(p).grad(None).expect("g")),
            vec![0.0; 3]
        );
    }
    assert_eq!(
        d.list_ctx().expect("ctx"),
        vec![Context::cpu(0), Context::cpu(1)]
    );
    d.reset_ctx(&[Context::cpu(2)]).expect("reset");
    assert_eq!(d.list_ctx().expect("ctx"), vec![Context::cpu(2)]);
    d.set_grad_req(GradReq::Null).expect("null");
    d.set_lr_mult(0.5);
    d.cast(DType::Float16).expect("cast");
    let p = mxparams::param_dict::read(d.parameters().nth(1).expect("p"));
    assert_eq!(p.lr_mult, 0.5);
    assert_eq!(p.dtype(), DType::Float16);
    assert!(matches!(p.grad(None), Err(Error::NoGradient(_))));
    assert_eq!(values(&p.data(None).expect("d")), vec![1.0, 1.5, 2.0]);
}

#[test]
fn save_load_round_trip_and_policies() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("a.params");
    let d = initialised("net_", 9, &[Context::cpu(0), Context::cpu(1)]);
    let e = d.save(&path, "other_").expect_err("prefix");
    assert!(
        matches!(&e, Error::PrefixMismatch(m) if m.starts_with("Prefix 'other_' is to be striped before saving, but Parameter's name 'net_w0' does not start with 'other_'.")),
        "{e}"
    );
    d.save(&path, "net_").expect("save");
    let loaded = mxparams::format::load(&path).expect("load");
    assert_eq!(loaded.names.as_deref().expect("names")[0], "w0");

    // Into an initialised dict with the same names: values land in every copy.
    let target = initialised("net_", 9, &[Context::cpu(0), Context::cpu(1)]);
    for p in target.parameters() {
        mxparams::param_dict::read(p)
            .data(Some(Context::cpu(1)))
            .expect("d")
            .assign(&f32s(&[0.0; 3], &[3]))
            .expect("zero");
    }
    let opts = LoadOptions {
        restore_prefix: "net_".into(),
        ..Default::default()
    };
    target.load(&path, &opts).expect("load");
    let p = mxparams::param_dict::read(target.parameters().nth(4).expect("p"));
    assert_eq!(
        values(&p.data(Some(Context::cpu(1))).expect("d")),
        vec![4.0, 4.5, 5.0]
    );
    drop(p);

    // Uninitialised params initialise on ctx; deferred ones take the file's shape.
    let mut fresh = ParameterDict::new("", None);
    fresh.get("w0", &shape(&[0])).expect("w0");
    let w1 = fresh
        .get(
            "w1",
            &ParamAttrs {
                shape: Some(vec![0]),
                allow_deferred_init: Some(true),
                ..Default::default()
            },
        )
        .expect("w1");
    mxparams::param_dict::write(&w1)
        .request_init(&[Context::cpu(5)], None, false)
        .expect("deferred");
    let opts = LoadOptions {
        ignore_extra: true,
        ctx: Some(vec![Context::cpu(3)]),
        ..Default::default()
    };
    let e = fresh.load(&path, &opts).expect_err("deferred ctx differs");
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("Failed to load Parameter 'w1' on [cpu(3)] because it was previous initialized on [cpu(5)].")),
        "{e}"
    );
    let mut fresh = ParameterDict::new("", None);
    fresh.get("w0", &shape(&[0])).expect("w0");
    fresh.insert("w1", w1.clone());
    let opts = LoadOptions {
        ignore_extra: true,
        ..Default::default()
    };
    fresh.load(&path, &opts).expect("load");
    let w0 = mxparams::param_dict::read(fresh.param("w0").expect("w0"));
    assert_eq!(w0.list_ctx().expect("ctx"), vec![Context::cpu(0)]);
    assert_eq!(w0.shape(), Some(&[3][..]));
    let w1 = mxparams::param_dict::read(&w1);
    assert_eq!(w1.list_ctx().expect("ctx"), vec![Context::cpu(5)]);
    assert_eq!(values(&w1.data(None).expect("d")), vec![1.0, 1.5, 2.0]);

    // Missing and extra.
    let mut more = ParameterDict::new("", None);
    more.get("zz", &shape(&[3])).expect("zz");
    let e = more
        .load(&path, &LoadOptions::default())
        .expect_err("missing");
    assert!(
        matches!(&e, Error::MissingParameter { name, message: m } if name == "zz" && m.contains("Parameter 'zz' is missing in file: ") && m.contains("'w0', 'w1', 'w2', ..., 'w5', 'w6', 'w7', 'w8'")),
        "{e}"
    );
    let e = more
        .load(
            &path,
            &LoadOptions {
                allow_missing: true,
                ..Default::default()
            },
        )
        .expect_err("extra");
    assert!(
        matches!(&e, Error::UnexpectedParameter { name, message: m } if name == "w0" && m.contains("Parameter 'w0' loaded from file: ") && m.contains("choices are: 'zz'")),
        "{e}"
    );
    more.load(
        &path,
        &LoadOptions {
            allow_missing: true,
            ignore_extra: true,
            ..Default::default()
        },
    )
    .expect("nothing to do");
    let e = target
        .load(
            &path,
            &LoadOptions {
                restore_prefix: "x_".into(),
                ..Default::default()
            },
        )
        .expect_err("restore");
    assert!(
        matches!(e, Error::PrefixMismatch(m) if m.starts_with("restore_prefix is 'x_' but Parameters name 'net_w0' does not start with 'x_'."))
    );
}

#[test]
fn load_dtype_policies() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("h.params");
    let half = mxparams::convert::cast(&f32s(&[1.5, 2.5], &[2]), DType::Float16).expect("f16");
    mxparams::format::save(&path, Some(&["w"]), &[&half], &Default::default()).expect("save");
    let mk = || {
        let mut d = ParameterDict::new("", None);
        let p = d.get("w", &shape(&[2])).expect("w");
        mxparams::param_dict::write(&p)
            .init_from_host(&f32s(&[0.0, 0.0], &[2]), &[Context::cpu(0)])
            .expect("init");
        (d, p)
    };
    let (d, _) = mk();
    let e = d.load(&path, &LoadOptions::default()).expect_err("dtype");
    assert!(
        matches!(&e, Error::DTypeMismatch(m) if m.contains("dtype incompatible expected float32 vs saved float16")),
        "{e}"
    );
    let (d, p) = mk();
    d.load(
        &path,
        &LoadOptions {
            cast_dtype: true,
            ..Default::default()
        },
    )
    .expect("current");
    assert_eq!(mxparams::param_dict::read(&p).dtype(), DType::Float32);
    assert_eq!(
        values(&mxparams::param_dict::read(&p).data(None).expect("d")),
        vec![1.5, 2.5]
    );
    let (d, p) = mk();
    d.load(
        &path,
        &LoadOptions {
            cast_dtype: true,
            dtype_source: DTypeSource::Saved,
            ..Default::default()
        },
    )
    .expect("saved");
    assert_eq!(mxparams::param_dict::read(&p).dtype(), DType::Float16);
    assert_eq!(
        mxparams::param_dict::read(&p)
            .grad(None)
            .expect("g")
            .dtype(),
        DType::Float16
    );
    // Shape conflicts name the parameter.
    let mut d = ParameterDict::new("", None);
    d.get("w", &shape(&[3])).expect("w");
    let e = d
        .load(
            &path,
            &LoadOptions {
                cast_dtype: true,
                ..Default::default()
            },
        )
        .expect_err("shape");
    assert!(
        matches!(e, Error::ShapeMismatch(m) if m.contains("Failed loading Parameter 'w' from saved params: shape incompatible expected (3,) vs saved (2,)"))
    );
    // A list file has no names.
    let list = dir.path().join("l.params");
    mxparams::format::save(&list, None, &[&half], &Default::default()).expect("save");
    assert!(matches!(
        d.load(&list, &LoadOptions::default()),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn constants_and_rust_initialize() {
    let mut d = ParameterDict::new("p_", None);
    let e = d.get_constant("c", None).expect_err("missing");
    assert!(matches!(e, Error::KeyNotFound(m) if m.contains("No constant named 'p_c'")));
    let v = f32s(&[1.0, 2.0], &[2]);
    let c = d.get_constant("c", Some(&v)).expect("new");
    assert!(Arc::ptr_eq(
        &c,
        &d.get_constant("c", Some(&v)).expect("same")
    ));
    let e = d
        .get_constant("c", Some(&f32s(&[1.0, 3.0], &[2])))
        .expect_err("differs");
    assert!(matches!(e, Error::AttributeConflict(m) if m.contains("value doesn't match")));
    d.get("w", &shape(&[3])).expect("w");
    d.get(
        "later",
        &ParamAttrs {
            shape: Some(vec![0]),
            allow_deferred_init: Some(true),
            ..Default::default()
        },
    )
    .expect("deferred");
    let e = d.get_constant("w", Some(&v)).expect_err("not constant");
    assert!(matches!(e, Error::AttributeConflict(m) if m.contains("is not a constant")));
    let ctxs = [Context::cpu(0), Context::cpu(1)];
    let mut filled = Vec::new();
    let skipped = d
        .initialize_with(&ctxs, false, |name, arr| {
            filled.push(name.to_string());
            arr.assign(&f32s(&[7.0; 3], &[3]))
        })
        .expect("init");
    assert!(skipped.is_empty());
    assert_eq!(filled, vec!["p_w".to_string()]);
    let cp = mxparams::param_dict::read(&c);
    assert_eq!(
        values(&cp.data(Some(Context::cpu(1))).expect("c")),
        vec![1.0, 2.0]
    );
    assert_eq!(cp.grad_req(), GradReq::Null);
    drop(cp);
    let w = mxparams::param_dict::read(d.param("p_w").expect("w"));
    assert_eq!(
        values(&w.data(Some(Context::cpu(1))).expect("w")),
        vec![7.0; 3]
    );
    drop(w);
    assert!(matches!(
        mxparams::param_dict::read(d.param("p_later").expect("l")).data(None),
        Err(Error::DeferredInit(_))
    ));
    let skipped = d
        .initialize_with(&ctxs, false, |_, _| Ok(()))
        .expect("again");
    assert_eq!(skipped, vec!["p_c".to_string(), "p_w".to_string()]);
}
