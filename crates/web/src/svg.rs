//! Charts as SVG drawn on the server: grouped bars with a `viewBox` (CSS scales them), a
//! `<title>` on each bar for its number, and nothing that needs a script. The numbers are
//! also in a table and a CSV beside each chart.

use std::fmt::Write;

use crate::error::escape;

/// One series of a bar chart: its name, colour and a value per label.
pub struct Series<'a> {
    pub name: &'a str,
    pub colour: &'a str,
    pub values: Vec<i64>,
}

const WIDTH: i64 = 720;
const HEIGHT: i64 = 240;
const LEFT: i64 = 56;
const BOTTOM: i64 = 28;
const TOP: i64 = 12;

/// Grouped bars: for each label, one bar per series. Negative values are drawn as zero.
/// `unit` is appended to a bar's title (` %`, ` ₽`); `show` formats a value for it.
pub fn bars(
    id: &str,
    title: &str,
    labels: &[String],
    series: &[Series<'_>],
    show: impl Fn(i64) -> String,
) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_w = WIDTH - LEFT - 8;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let groups = labels.len().max(1) as i64;
    let group_w = plot_w / groups;
    let per = series.len().max(1) as i64;
    let bar_w = ((group_w - 6) / per).max(1);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg id=\"{}\" class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        escape(id),
        escape(title)
    );
    let _ = write!(s, "<title>{}</title>", escape(title));
    // The axis: zero and the largest value.
    let base = TOP + plot_h;
    let _ = write!(
        s,
        "<line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"#c9ced8\"/>\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{}\" y2=\"{TOP}\" stroke=\"#eef0f4\"/>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\" fill=\"#5d6575\">{}</text>\
         <text x=\"{}\" y=\"{base}\" font-size=\"11\" text-anchor=\"end\" fill=\"#5d6575\">0</text>",
        WIDTH - 8,
        WIDTH - 8,
        LEFT - 6,
        TOP + 4,
        escape(&show(max)),
        LEFT - 6,
    );
    for (g, label) in labels.iter().enumerate() {
        let x0 = LEFT + g as i64 * group_w + 3;
        for (k, ser) in series.iter().enumerate() {
            let v = ser.values.get(g).copied().unwrap_or(0).max(0);
            let h = v * plot_h / max;
            let x = x0 + k as i64 * bar_w;
            let _ = write!(
                s,
                "<rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{h}\" fill=\"{}\" \
                 data-value=\"{v}\"><title>{}: {} — {}</title></rect>",
                base - h,
                (bar_w - 1).max(1),
                escape(ser.colour),
                escape(label),
                escape(ser.name),
                escape(&show(v)),
            );
        }
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\" \
             fill=\"#5d6575\">{}</text>",
            x0 + group_w / 2 - 3,
            HEIGHT - 10,
            escape(label)
        );
    }
    // The legend.
    for (k, ser) in series.iter().enumerate() {
        let x = LEFT + 8 + k as i64 * 150;
        let _ = write!(
            s,
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#1d2330\">{}</text>",
            TOP,
            escape(ser.colour),
            x + 14,
            TOP + 9,
            escape(ser.name)
        );
    }
    s.push_str("</svg>");
    s
}

/// `text` as a QR code (error correction M, a 4-module quiet zone) in SVG: one path of unit
/// squares in a `viewBox` of modules, so it scales sharp. `None` when the text does not fit.
pub fn qr(text: &str, label: &str) -> Option<String> {
    use qrcode::{Color, EcLevel, QrCode};
    const QUIET: usize = 4;
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).ok()?;
    let width = code.width();
    let side = width + 2 * QUIET;
    let mut path = String::new();
    for (i, color) in code.to_colors().iter().enumerate() {
        if *color == Color::Dark {
            let _ = write!(path, "M{} {}h1v1h-1z", i % width + QUIET, i / width + QUIET);
        }
    }
    Some(format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" class="qr" role="img" aria-label="{label}" shape-rendering="crispEdges"><rect width="{side}" height="{side}" fill="#fff"/><path d="{path}" fill="#000"/></svg>"##,
        label = escape(label),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bar_carries_its_value_and_scales_to_the_largest() {
        let svg = bars(
            "c",
            "Points <by month>",
            &["11.2026".into(), "12.2026".into()],
            &[
                Series {
                    name: "issued",
                    colour: "#7a3cf0",
                    values: vec![100, 200],
                },
                Series {
                    name: "spent",
                    colour: "#1f8a4c",
                    values: vec![-5, 50],
                },
            ],
            |v| v.to_string(),
        );
        assert!(svg.starts_with("<svg id=\"c\""));
        assert!(svg.contains("Points &lt;by month&gt;"));
        assert_eq!(svg.matches("data-value=").count(), 4);
        assert!(svg.contains("data-value=\"0\""), "negative drawn as zero");
        // The largest bar fills the plot: 240 - 12 - 28 = 200 high.
        assert!(svg.contains("height=\"200\" fill=\"#7a3cf0\" data-value=\"200\""));
        assert!(svg.contains("height=\"100\" fill=\"#7a3cf0\" data-value=\"100\""));
        assert!(svg.contains("<title>12.2026: spent — 50</title>"));
    }

    #[test]
    fn a_qr_code_is_drawn_to_scale_with_its_quiet_zone() {
        let svg = qr("https://t.me/salon_bot?start=s7", "join <bot>").unwrap();
        // 35 characters at level M fit version 3: 29 modules, plus 4 each side.
        assert!(svg.contains(r#"viewBox="0 0 37 37""#), "{svg}");
        // The finder pattern's corner: the first dark module at (4, 4).
        assert!(svg.contains("M4 4h1v1h-1z"), "{svg}");
        assert!(svg.contains(r#"aria-label="join &lt;bot&gt;""#));
    }
}
