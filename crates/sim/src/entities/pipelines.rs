//! Pipelines and their stages: the v2 and v1 views.

use super::views::{t1, t2};
use crate::model::{Pipeline, Stage};
use serde::Serialize;

#[derive(Serialize)]
pub struct PipelineV2<'a> {
    id: u64,
    name: &'a str,
    order_nr: u32,
    is_deleted: bool,
    is_deal_probability_enabled: bool,
    add_time: String,
    update_time: String,
}

pub fn pipeline_v2(p: &Pipeline) -> PipelineV2<'_> {
    PipelineV2 {
        id: p.id,
        name: &p.name,
        order_nr: p.order_nr,
        is_deleted: p.deleted_time.is_some(),
        is_deal_probability_enabled: p.probability_enabled,
        add_time: t2(p.add_time),
        update_time: t2(p.update_time),
    }
}

#[derive(Serialize)]
pub struct StageV2<'a> {
    id: u64,
    order_nr: u32,
    name: &'a str,
    is_deleted: bool,
    deal_probability: u32,
    pipeline_id: u64,
    is_deal_rot_enabled: bool,
    days_to_rotten: Option<u32>,
    add_time: String,
    update_time: String,
}

pub fn stage_v2(s: &Stage) -> StageV2<'_> {
    StageV2 {
        id: s.id,
        order_nr: s.order_nr,
        name: &s.name,
        is_deleted: s.deleted_time.is_some(),
        deal_probability: s.probability,
        pipeline_id: s.pipeline_id,
        is_deal_rot_enabled: s.rotten_days.is_some(),
        days_to_rotten: s.rotten_days,
        add_time: t2(s.add_time),
        update_time: t2(s.update_time),
    }
}

#[derive(Serialize)]
pub struct PipelineV1<'a> {
    id: u64,
    name: &'a str,
    url_title: String,
    order_nr: u32,
    active: bool,
    deal_probability: bool,
    add_time: String,
    update_time: String,
}

pub fn pipeline_v1(p: &Pipeline) -> PipelineV1<'_> {
    PipelineV1 {
        id: p.id,
        name: &p.name,
        url_title: p.name.to_lowercase().replace(' ', "-"),
        order_nr: p.order_nr,
        active: p.deleted_time.is_none(),
        deal_probability: p.probability_enabled,
        add_time: t1(p.add_time),
        update_time: t1(p.update_time),
    }
}

#[derive(Serialize)]
pub struct StageV1<'a> {
    id: u64,
    order_nr: u32,
    name: &'a str,
    active_flag: bool,
    deal_probability: u32,
    pipeline_id: u64,
    rotten_flag: bool,
    rotten_days: Option<u32>,
    add_time: String,
    update_time: String,
}

pub fn stage_v1(s: &Stage) -> StageV1<'_> {
    StageV1 {
        id: s.id,
        order_nr: s.order_nr,
        name: &s.name,
        active_flag: s.deleted_time.is_none(),
        deal_probability: s.probability,
        pipeline_id: s.pipeline_id,
        rotten_flag: s.rotten_days.is_some(),
        rotten_days: s.rotten_days,
        add_time: t1(s.add_time),
        update_time: t1(s.update_time),
    }
}
