//! What recording metrics adds to each request: classifying the path into bounded labels and
//! recording the SCIM request, one legacy call and one store operation, plus the cost of one
//! `/metrics` scrape. The gateway bench measures whole requests; these are the parts the
//! admin listener's metrics add to them.
//!
//! Run: `cargo bench --bench metrics -- --warm-up-time 1 --measurement-time 3`

use criterion::{Criterion, criterion_group, criterion_main};
use scimgate::metrics::{
    BackendOutcome, Metrics, OperationLabel, ResourceLabel, StoreOp, classify,
};
use std::hint::black_box;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let m = Metrics::new();
    let get = http::Method::GET;
    c.bench_function("classify GET /scim/v2/Users/{id}", |b| {
        b.iter(|| {
            classify(
                black_box(&get),
                black_box("/scim/v2/Users/2819c223-7f76-453a-919d-413861904646"),
                "/scim/v2",
            )
        })
    });
    c.bench_function(
        "per request: classify + request + backend call + key check",
        |b| {
            b.iter(|| {
                let (r, o) = classify(
                    black_box(&get),
                    black_box("/scim/v2/Users/2819c223-7f76-453a-919d-413861904646"),
                    "/scim/v2",
                );
                m.observe_store(StoreOp::VerifyKey, Duration::from_micros(40), true);
                m.observe_backend(BackendOutcome::of_status(200), Duration::from_micros(300));
                m.observe_request(r, o, black_box(200), Duration::from_micros(500));
            })
        },
    );
    // A scrape with every request series of a busy gateway present.
    let resources = [ResourceLabel::User, ResourceLabel::Group];
    let ops = [
        OperationLabel::Get,
        OperationLabel::List,
        OperationLabel::Create,
        OperationLabel::Replace,
        OperationLabel::Patch,
        OperationLabel::Delete,
    ];
    for r in resources {
        for o in ops {
            for s in [200, 201, 204, 400, 401, 404, 409, 502] {
                m.observe_request(r, o, s, Duration::from_millis(3));
            }
        }
    }
    c.bench_function("scrape: encode /metrics (96 request series)", |b| {
        b.iter(|| black_box(m.encode()).len())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
