//! Medians, spreads and the coefficient of variation of a handful of rounds.

use std::fmt;

/// Median (mean of the middle two for an even count); NaN when empty.
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Standard deviation over mean (sample); NaN with fewer than two values.
pub fn cv(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return f64::NAN;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    var.sqrt() / mean
}

/// Median and range of per-round ratios.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// Of these values (NaN fields when empty).
    pub fn of(xs: &[f64]) -> Spread {
        let v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
        Spread {
            median: median(&v),
            min: v.iter().copied().fold(f64::NAN, f64::min),
            max: v.iter().copied().fold(f64::NAN, f64::max),
        }
    }
}

impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.median.is_finite() {
            write!(f, "–")
        } else if self.min == self.max {
            write!(f, "{:.2}x", self.median)
        } else {
            write!(f, "{:.2}x [{:.2}–{:.2}]", self.median, self.min, self.max)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_spread() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        let s = Spread::of(&[1.2, 0.9, 1.5]);
        assert_eq!((s.median, s.min, s.max), (1.2, 0.9, 1.5));
        assert_eq!(s.to_string(), "1.20x [0.90–1.50]");
        assert!((cv(&[10.0, 10.0]) - 0.0).abs() < 1e-12);
        assert!(cv(&[1.0]).is_nan());
    }
}
