//! A server-side SVG trend chart: works without JavaScript, prints, and is read out by screen
//! readers from its `<title>` and `<desc>` (which list every value). Abnormal points are drawn
//! as a different shape with a letter beside them, so colour is never the only signal.

use std::fmt::Write as _;

use time::OffsetDateTime;

use crate::dates;
use crate::html::escape;

/// One test's numeric results over time.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendSeries {
    /// Distinguishes this chart's element ids on a page (any text; reduced to `[a-z0-9-]`).
    pub id: String,
    /// The test's name, e.g. "Potassium".
    pub title: String,
    pub unit: String,
    /// In any order; drawn in time order.
    pub points: Vec<TrendPoint>,
    /// Reference range, drawn as a band.
    pub low: Option<f64>,
    pub high: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrendPoint {
    pub when: OffsetDateTime,
    pub value: f64,
    /// The abnormal flag in words ("High", "Critically low"), `None` when normal.
    pub flag: Option<String>,
}

const W: f64 = 640.0;
const H: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 44.0;

/// A short number for axis labels and descriptions.
fn short_number(x: f64) -> String {
    let decimals = if x.abs() >= 100.0 {
        0
    } else if x.abs() >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

fn flag_letter(flag: &str) -> &'static str {
    let f = flag.to_ascii_lowercase();
    if f.contains("critical") {
        "!"
    } else if f.contains("high") {
        "H"
    } else if f.contains("low") {
        "L"
    } else {
        "A"
    }
}

/// The chart as an `<svg>` element (escaped; safe to embed in HTML).
pub fn trend_svg(series: &TrendSeries) -> String {
    let id: String = series
        .id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let mut pts: Vec<&TrendPoint> = series
        .points
        .iter()
        .filter(|p| p.value.is_finite())
        .collect();
    pts.sort_by_key(|p| p.when);

    // Description: every value in words, so the chart is never the only way to read them.
    let mut desc = String::new();
    let _ = write!(
        desc,
        "{} over time, {} result{}",
        series.title,
        pts.len(),
        if pts.len() == 1 { "" } else { "s" }
    );
    match (series.low, series.high) {
        (Some(lo), Some(hi)) => {
            let _ = write!(
                desc,
                "; reference range {} to {} {}",
                short_number(lo),
                short_number(hi),
                series.unit
            );
        }
        (Some(lo), None) => {
            let _ = write!(
                desc,
                "; reference range above {} {}",
                short_number(lo),
                series.unit
            );
        }
        (None, Some(hi)) => {
            let _ = write!(
                desc,
                "; reference range below {} {}",
                short_number(hi),
                series.unit
            );
        }
        (None, None) => {}
    }
    desc.push_str(". ");
    for (i, p) in pts.iter().enumerate() {
        if i > 0 {
            desc.push_str("; ");
        }
        let _ = write!(
            desc,
            "{}: {} {}",
            dates::short(p.when),
            short_number(p.value),
            series.unit
        );
        if let Some(f) = &p.flag {
            let _ = write!(desc, " ({f})");
        }
    }
    desc.push('.');

    let mut lo = pts.iter().map(|p| p.value).fold(f64::INFINITY, f64::min);
    let mut hi = pts
        .iter()
        .map(|p| p.value)
        .fold(f64::NEG_INFINITY, f64::max);
    for r in [series.low, series.high].into_iter().flatten() {
        lo = lo.min(r);
        hi = hi.max(r);
    }
    if !lo.is_finite() || !hi.is_finite() {
        lo = 0.0;
        hi = 1.0;
    }
    let pad = ((hi - lo) * 0.1).max(hi.abs() * 0.05).max(1e-9);
    let (lo, hi) = (lo - pad, hi + pad);
    let t0 = pts.first().map_or(0, |p| p.when.unix_timestamp());
    let t1 = pts.last().map_or(0, |p| p.when.unix_timestamp());
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let x = |t: i64| -> f64 {
        if t1 == t0 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * ((t - t0) as f64) / ((t1 - t0) as f64)
        }
    };
    let y = |v: f64| -> f64 { TOP + plot_h * (1.0 - (v - lo) / (hi - lo)) };

    let mut s = String::with_capacity(2048);
    let _ = write!(
        s,
        "<svg class=\"cr-trend\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"100%\" preserveAspectRatio=\"xMidYMid meet\" role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" focusable=\"false\">"
    );
    let _ = write!(
        s,
        "<title id=\"{id}-title\">{} trend</title><desc id=\"{id}-desc\">{}</desc>",
        escape(&series.title),
        escape(&desc)
    );
    // Reference range band.
    if series.low.is_some() || series.high.is_some() {
        let band_top = y(series.high.unwrap_or(hi));
        let band_bottom = y(series.low.unwrap_or(lo));
        let _ = write!(
            s,
            "<rect class=\"cr-trend__range\" x=\"{LEFT}\" y=\"{band_top:.1}\" width=\"{plot_w:.1}\" height=\"{:.1}\" fill=\"#cce2d8\"/>",
            (band_bottom - band_top).max(0.0)
        );
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#005a30\">Reference range</text>",
            W - RIGHT - 4.0,
            band_top + 12.0
        );
    }
    // Axes and labels.
    let _ = write!(
        s,
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{:.1}\" stroke=\"#4c6272\"/><line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#4c6272\"/>",
        TOP + plot_h,
        TOP + plot_h,
        W - RIGHT,
        TOP + plot_h
    );
    for v in [lo + pad, (lo + hi) / 2.0, hi - pad] {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\" fill=\"#212b32\">{}</text>",
            LEFT - 6.0,
            y(v) + 4.0,
            escape(&short_number(v))
        );
    }
    let _ = write!(
        s,
        "<text x=\"12\" y=\"{:.1}\" font-size=\"12\" fill=\"#212b32\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">{}</text>",
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        escape(&series.unit)
    );
    if let (Some(first), Some(last)) = (pts.first(), pts.last()) {
        let _ = write!(
            s,
            "<text x=\"{LEFT}\" y=\"{:.1}\" font-size=\"12\" fill=\"#212b32\">{}</text>",
            H - 14.0,
            escape(&dates::short(first.when))
        );
        if pts.len() > 1 {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\" fill=\"#212b32\">{}</text>",
                W - RIGHT,
                H - 14.0,
                escape(&dates::short(last.when))
            );
        }
    }
    // The line.
    if pts.len() > 1 {
        s.push_str("<polyline fill=\"none\" stroke=\"#005eb8\" stroke-width=\"2\" points=\"");
        for p in &pts {
            let _ = write!(s, "{:.1},{:.1} ", x(p.when.unix_timestamp()), y(p.value));
        }
        s.push_str("\"/>");
    }
    // Points: normal ones are circles; abnormal ones are diamonds with a letter.
    for p in &pts {
        let (px, py) = (x(p.when.unix_timestamp()), y(p.value));
        match &p.flag {
            None => {
                let _ = write!(
                    s,
                    "<circle class=\"cr-trend__point\" cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"4\" fill=\"#005eb8\"/>"
                );
            }
            Some(f) => {
                let _ = write!(
                    s,
                    "<path class=\"cr-trend__point cr-trend__point--abnormal\" d=\"M{px:.1} {:.1} L{:.1} {py:.1} L{px:.1} {:.1} L{:.1} {py:.1} Z\" fill=\"#d5281b\" stroke=\"#212b32\" stroke-width=\"1\"><title>{}</title></path>",
                    py - 7.0,
                    px + 7.0,
                    py + 7.0,
                    px - 7.0,
                    escape(f)
                );
                let _ = write!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" font-weight=\"bold\" fill=\"#212b32\">{}</text>",
                    px + 9.0,
                    py - 6.0,
                    flag_letter(f)
                );
            }
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn series() -> TrendSeries {
        TrendSeries {
            id: "Potassium 2823-3".into(),
            title: "Potassium <serum>".into(),
            unit: "mmol/L".into(),
            points: vec![
                TrendPoint {
                    when: datetime!(2026-11-20 10:00 UTC),
                    value: 6.1,
                    flag: Some("High".into()),
                },
                TrendPoint {
                    when: datetime!(2026-06-01 10:00 UTC),
                    value: 4.2,
                    flag: None,
                },
            ],
            low: Some(3.5),
            high: Some(5.3),
        }
    }

    #[test]
    fn chart_is_accessible_and_marks_abnormal_points_by_shape_and_letter() {
        let svg = trend_svg(&series());
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains("aria-labelledby=\"potassium-2823-3-title potassium-2823-3-desc\""));
        assert!(svg.contains(
            "<title id=\"potassium-2823-3-title\">Potassium &lt;serum&gt; trend</title>"
        ));
        assert!(svg.contains("1 Jun 2026: 4.2 mmol/L; 20 Nov 2026: 6.1 mmol/L (High)"));
        assert!(svg.contains("reference range 3.5 to 5.3 mmol/L"));
        assert!(svg.contains("cr-trend__range"));
        assert_eq!(svg.matches("cr-trend__point--abnormal").count(), 1);
        assert!(svg.contains(">H</text>"));
        assert!(svg.contains("<polyline"));
        assert!(!svg.contains("<serum>"));
    }

    #[test]
    fn degenerate_series_do_not_panic() {
        let mut s = series();
        s.points.truncate(1);
        s.low = None;
        s.high = None;
        assert!(trend_svg(&s).contains("<circle") || trend_svg(&s).contains("<path"));
        s.points.clear();
        assert!(trend_svg(&s).ends_with("</svg>"));
        s.points.push(TrendPoint {
            when: datetime!(2026-01-01 0:00 UTC),
            value: f64::NAN,
            flag: None,
        });
        assert!(!trend_svg(&s).contains("NaN"));
    }
}
