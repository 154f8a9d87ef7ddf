//! Decoding adjustments picked on dev: a tagger trained on text that is mostly `O` leans to it
//! (its errors are mostly misses), and a penalty on the `O` score, chosen on dev, trades a
//! little precision for recall. The penalty is searched as fractions of a score margin, so that
//! one grid serves taggers whose scores have different scales.

/// Mean margin, over score rows, between the `O` score (column 0) and the best other tag's.
pub fn mean_o_margin<R: AsRef<[f32]>>(rows: impl IntoIterator<Item = R>) -> f32 {
    let (mut sum, mut n) = (0f64, 0usize);
    for row in rows {
        let e = row.as_ref();
        if e.len() < 2 {
            continue; // only `O`: no margin
        }
        let best_other = e[1..].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        sum += (e[0] - best_other).abs() as f64;
        n += 1;
    }
    (sum / n.max(1) as f64) as f32
}

/// Mean margin, over score rows, between each row's best and second-best score.
pub fn mean_top2_margin<R: AsRef<[f32]>>(rows: impl IntoIterator<Item = R>) -> f64 {
    let (mut sum, mut n) = (0f64, 0usize);
    for r in rows {
        let r = r.as_ref();
        let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
        for &x in r {
            if x > a {
                b = a;
                a = x;
            } else if x > b {
                b = x;
            }
        }
        if r.len() > 1 {
            sum += (a - b) as f64;
            n += 1;
        }
    }
    sum / n.max(1) as f64
}

/// Subtracts `o_penalty` from a score row's `O` (column 0).
pub fn penalize_o(row: &mut [f32], o_penalty: f32) {
    if let Some(o) = row.first_mut() {
        *o -= o_penalty;
    }
}

/// Tries `fractions` of `scale` as penalties in order, scoring each with `score` (higher is
/// better), and returns the penalty of the best with every `(fraction, score)` tried. A later
/// one replaces an earlier only if it scores strictly higher, so ties keep the earlier choice;
/// `start` is a score to beat (with its penalty) already known, e.g. the untuned decoding's.
pub fn search_o_penalty<E>(
    fractions: &[f32],
    scale: f32,
    start: Option<(f64, f32)>,
    mut score: impl FnMut(f32, f32) -> Result<f64, E>,
) -> Result<(f32, Vec<(f32, f64)>), E> {
    let mut best = start.unwrap_or((f64::NEG_INFINITY, 0.0));
    let mut tried = Vec::with_capacity(fractions.len());
    for &frac in fractions {
        let v = score(frac, frac * scale)?;
        tried.push((frac, v));
        if v > best.0 {
            best = (v, frac * scale);
        }
    }
    Ok((best.1, tried))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins() {
        assert_eq!(mean_o_margin([[3.0f32, 1.0, 2.0], [0.0, 2.0, -1.0]]), 1.5);
        assert_eq!(mean_top2_margin([[3.0f32, 1.0, 2.0], [0.0, 2.0, -1.0]]), 1.5);
        assert_eq!(mean_o_margin([[1.0f32]]), 0.0, "a row of O alone has no margin");
    }

    #[test]
    fn search_keeps_the_first_best() {
        let scores = [0.5, 0.7, 0.7, 0.6];
        let mut i = 0;
        let (p, tried) = search_o_penalty::<()>(&[0.0, 0.1, 0.2, 0.3], 10.0, None, |_, _| {
            i += 1;
            Ok(scores[i - 1])
        })
        .unwrap();
        assert_eq!(p, 1.0);
        assert_eq!(tried.len(), 4);
        let (p, _) = search_o_penalty::<()>(&[0.1], 10.0, Some((0.9, 0.0)), |_, _| Ok(0.8)).unwrap();
        assert_eq!(p, 0.0, "a known better start is kept");
    }
}
