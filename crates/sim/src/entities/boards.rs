//! Project boards and their phases (the Projects add-on's setup): a fixed layout that every
//! seeded project points into (board 1, phases 1 to 3).

use crate::envelope;
use crate::model::Db;
use crate::respond::{Ctx, Resp, err, v2_invalid};
use crate::util::{ANCHOR_MS, DAY_MS, Ms, iso_ms, v1ts};
use serde::Serialize;

struct Board {
    id: u64,
    name: &'static str,
}

struct Phase {
    id: u64,
    board_id: u64,
    name: &'static str,
}

const BOARDS: &[Board] = &[
    Board {
        id: 1,
        name: "Delivery",
    },
    Board {
        id: 2,
        name: "Customer success",
    },
];

const PHASES: &[Phase] = &[
    Phase {
        id: 1,
        board_id: 1,
        name: "Planning",
    },
    Phase {
        id: 2,
        board_id: 1,
        name: "In progress",
    },
    Phase {
        id: 3,
        board_id: 1,
        name: "Done",
    },
    Phase {
        id: 4,
        board_id: 2,
        name: "Onboarding",
    },
    Phase {
        id: 5,
        board_id: 2,
        name: "Adoption",
    },
];

const ADDED: Ms = ANCHOR_MS - 900 * DAY_MS;
const UPDATED: Ms = ANCHOR_MS - 400 * DAY_MS;

/// v2 writes RFC 3339 with milliseconds, v1 `YYYY-MM-DD HH:MM:SS`.
#[derive(Clone, Copy)]
pub enum Format {
    V1,
    V2,
}

impl Format {
    fn time(self, ms: Ms) -> String {
        match self {
            Format::V1 => v1ts(ms),
            Format::V2 => iso_ms(ms),
        }
    }
}

#[derive(Serialize)]
struct BoardView {
    id: u64,
    name: &'static str,
    order_nr: u64,
    add_time: String,
    update_time: String,
}

#[derive(Serialize)]
struct PhaseView {
    id: u64,
    name: &'static str,
    board_id: u64,
    order_nr: u64,
    add_time: String,
    update_time: String,
}

fn board_view(b: &Board, f: Format) -> BoardView {
    BoardView {
        id: b.id,
        name: b.name,
        order_nr: b.id,
        add_time: f.time(ADDED),
        update_time: f.time(UPDATED),
    }
}

fn phase_view(p: &Phase, f: Format) -> PhaseView {
    PhaseView {
        id: p.id,
        name: p.name,
        board_id: p.board_id,
        order_nr: PHASES
            .iter()
            .filter(|q| q.board_id == p.board_id && q.id <= p.id)
            .count() as u64,
        add_time: f.time(ADDED),
        update_time: f.time(UPDATED),
    }
}

/// `/boards` (not paged) and `/boards/{id}`.
pub fn get_boards(_db: &Db, rest: &[&str], f: Format) -> Resp {
    match rest {
        [] => envelope::unpaged(&BOARDS.iter().map(|b| board_view(b, f)).collect::<Vec<_>>()),
        [id] => match BOARDS.iter().find(|b| b.id.to_string() == *id) {
            Some(b) => envelope::data(&board_view(b, f)),
            None => err(404, "Board not found"),
        },
        _ => crate::respond::unknown_route(),
    }
}

/// `/phases?board_id=` (required, not paged) and `/phases/{id}`.
pub fn get_phases(c: &Ctx, _db: &Db, rest: &[&str], f: Format) -> Resp {
    match rest {
        [] => {
            let Some(board) = c.q.val("board_id") else {
                return match f {
                    Format::V2 => v2_invalid("board_id: Required"),
                    Format::V1 => err(400, "board_id is required"),
                };
            };
            let Ok(board) = board.parse::<u64>() else {
                return match f {
                    Format::V2 => v2_invalid("board_id: Expected number, received string"),
                    Format::V1 => err(400, "board_id must be a number"),
                };
            };
            let views: Vec<PhaseView> = PHASES
                .iter()
                .filter(|p| p.board_id == board)
                .map(|p| phase_view(p, f))
                .collect();
            envelope::unpaged(&views)
        }
        [id] => match PHASES.iter().find(|p| p.id.to_string() == *id) {
            Some(p) => envelope::data(&phase_view(p, f)),
            None => err(404, "Phase not found"),
        },
        _ => crate::respond::unknown_route(),
    }
}

pub fn truth_boards() -> Vec<u8> {
    envelope::truth(
        &BOARDS
            .iter()
            .map(|b| board_view(b, Format::V2))
            .collect::<Vec<_>>(),
    )
}

pub fn truth_phases() -> Vec<u8> {
    envelope::truth(
        &PHASES
            .iter()
            .map(|p| phase_view(p, Format::V2))
            .collect::<Vec<_>>(),
    )
}
