//! Agreement of the systems' answers on every point, with boundary ties told apart.

use crate::data::Shapes;
use geo::{Distance, Euclidean, MultiPolygon, Point};
use std::collections::BTreeSet;
use std::fmt::Write as _;

pub(crate) struct Agreement {
    pub(crate) systems: Vec<&'static str>,
    /// Per system: points where its answer differs from PostGIS.
    pub(crate) vs_postgis: Vec<usize>,
    /// Points where not all systems agree, and how many of those are boundary ties.
    pub(crate) any: usize,
    pub(crate) ties: usize,
    pub(crate) examples: Vec<String>,
    pub(crate) points_in_one: usize,
    pub(crate) points_in_none: usize,
    pub(crate) points_in_more: usize,
}

pub(crate) fn near_boundary(mp: &MultiPolygon<f64>, p: Point<f64>) -> f64 {
    mp.0.iter()
        .flat_map(|poly| std::iter::once(poly.exterior()).chain(poly.interiors()))
        .map(|r| Euclidean.distance(&p, r))
        .fold(f64::INFINITY, f64::min)
}

pub(crate) fn agreement(
    points: &[[f64; 2]],
    systems: Vec<&'static str>,
    answers: &[Vec<BTreeSet<String>>],
    shapes: &Shapes,
) -> Agreement {
    let mut a = Agreement {
        vs_postgis: vec![0; systems.len()],
        systems,
        any: 0,
        ties: 0,
        examples: Vec::new(),
        points_in_one: 0,
        points_in_none: 0,
        points_in_more: 0,
    };
    for (i, p) in points.iter().enumerate() {
        match answers[0][i].len() {
            0 => a.points_in_none += 1,
            1 => a.points_in_one += 1,
            _ => a.points_in_more += 1,
        }
        let mut differ = false;
        let mut disputed = BTreeSet::new();
        for (s, ans) in answers.iter().enumerate().skip(1) {
            if ans[i] != answers[0][i] {
                a.vs_postgis[s] += 1;
                differ = true;
                disputed.extend(ans[i].symmetric_difference(&answers[0][i]).cloned());
            }
        }
        if !differ {
            continue;
        }
        a.any += 1;
        let pt = Point::new(p[0], p[1]);
        let dist = disputed
            .iter()
            .filter_map(|id| shapes.get(id))
            .map(|mp| near_boundary(mp, pt))
            .fold(0.0f64, f64::max);
        let tie = dist <= 1e-9;
        if tie {
            a.ties += 1;
        }
        if a.examples.len() < 8 {
            let mut e = format!("point {i} ({}, {}):", p[0], p[1]);
            for (s, ans) in answers.iter().enumerate() {
                let _ = write!(e, " {} {:?};", a.systems[s], ans[i]);
            }
            let _ = write!(
                e,
                " farthest disputed boundary {dist:.3e}° ({})",
                if tie { "tie" } else { "NOT a tie" }
            );
            a.examples.push(e);
        }
    }
    a
}
