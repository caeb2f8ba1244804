//! Write endpoints: v2 POST/PATCH/DELETE for core entities, v1 notes and leads.

use crate::api::{Ctx, Resp, unknown_route};
use crate::model::Db;

pub fn write(c: &Ctx, db: &mut Db, ver: u8, method: &str, segs: &[&str], body: &[u8]) -> Resp {
    let _ = (c, db, ver, method, segs, body);
    unknown_route()
}
