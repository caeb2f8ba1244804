//! Lower-priority v1 endpoints whose data is derived on the fly.

use crate::api::{Ctx, Resp, unknown_route};
use crate::model::Db;

pub fn get_v1_extra(c: &Ctx, db: &Db, segs: &[&str]) -> Resp {
    let _ = (c, db, segs);
    unknown_route()
}
