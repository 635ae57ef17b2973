//! What a training run reports: one metrics row per epoch (CSV) and a loss and
//! accuracy curve (SVG).

use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// The metrics of one epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's samples.
    pub train_loss: f64,
    /// Loss on the held-out set, when there is one.
    pub val_loss: Option<f64>,
    /// Accuracy on the held-out set, for classification models.
    pub val_accuracy: Option<f64>,
    /// Wall time of the epoch.
    pub seconds: f64,
}

/// The header of the metrics CSV.
pub const HEADER: &str = "epoch,train_loss,val_loss,val_accuracy,seconds";

impl EpochMetrics {
    /// The epoch as a CSV row (empty fields for what does not apply).
    pub fn csv_row(&self) -> String {
        let opt = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
        format!("{},{},{},{},{:.3}\n", self.epoch, self.train_loss, opt(self.val_loss), opt(self.val_accuracy), self.seconds)
    }

    /// Parses rows written by [`EpochMetrics::csv_row`].
    pub fn parse_rows(text: &str) -> Vec<EpochMetrics> {
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                let opt = |s: &str| if s.is_empty() { None } else { s.parse().ok() };
                Some(EpochMetrics {
                    epoch: f.first()?.parse().ok()?,
                    train_loss: f.get(1)?.parse().ok()?,
                    val_loss: opt(f.get(2)?),
                    val_accuracy: opt(f.get(3)?),
                    seconds: f.get(4)?.parse().ok()?,
                })
            })
            .collect()
    }
}

/// The whole metrics CSV.
pub fn csv(history: &[EpochMetrics]) -> String {
    let mut s = format!("{HEADER}\n");
    for m in history {
        let _ = write!(s, "{}", m.csv_row());
    }
    s
}

/// Plots training and validation loss (left axis) and validation accuracy
/// (right axis, when known) per epoch as an SVG document.
pub fn plot_svg(history: &[EpochMetrics], title: &str) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let n = history.len().max(1) as f64;
        let losses = history.iter().flat_map(|m| std::iter::once(m.train_loss).chain(m.val_loss)).filter(|v| v.is_finite());
        let ymax = losses.fold(0.0f64, f64::max).max(1e-9) * 1.05;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .right_y_label_area_size(56)
            .build_cartesian_2d(1.0..n.max(2.0), 0.0..ymax)
            .map_err(|e| e.to_string())?
            .set_secondary_coord(1.0..n.max(2.0), 0.0..1.0);
        chart.configure_mesh().x_desc("epoch").y_desc("loss").draw().map_err(|e| e.to_string())?;
        chart.configure_secondary_axes().y_desc("accuracy").draw().map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(history.iter().map(|m| (m.epoch as f64, m.train_loss)), &BLUE))
            .map_err(|e| e.to_string())?
            .label("train loss")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
        if history.iter().any(|m| m.val_loss.is_some()) {
            chart
                .draw_series(LineSeries::new(history.iter().filter_map(|m| Some((m.epoch as f64, m.val_loss?))), &RED))
                .map_err(|e| e.to_string())?
                .label("validation loss")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
        }
        if history.iter().any(|m| m.val_accuracy.is_some()) {
            chart
                .draw_secondary_series(LineSeries::new(history.iter().filter_map(|m| Some((m.epoch as f64, m.val_accuracy?))), &GREEN))
                .map_err(|e| e.to_string())?
                .label("validation accuracy")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], GREEN));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Writes the metrics CSV atomically.
pub fn write_csv(path: &Path, history: &[EpochMetrics]) -> std::io::Result<()> {
    crate::io::write_atomic(path, csv(history).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> Vec<EpochMetrics> {
        vec![
            EpochMetrics { epoch: 1, train_loss: 2.0, val_loss: Some(1.5), val_accuracy: Some(0.5), seconds: 0.25 },
            EpochMetrics { epoch: 2, train_loss: 1.0, val_loss: Some(0.9), val_accuracy: Some(0.75), seconds: 0.5 },
        ]
    }

    #[test]
    fn csv_rows_round_trip_and_leave_unknowns_empty() {
        let h = history();
        let text = csv(&h);
        assert!(text.starts_with("epoch,train_loss,val_loss,val_accuracy,seconds\n1,2,1.5,0.5,0.250\n"));
        assert_eq!(EpochMetrics::parse_rows(&text), h);
        let reg = EpochMetrics { epoch: 1, train_loss: 0.5, val_loss: Some(0.25), val_accuracy: None, seconds: 1.0 };
        assert_eq!(reg.csv_row(), "1,0.5,0.25,,1.000\n");
    }

    #[test]
    fn plot_is_an_svg_with_every_series() {
        let svg = plot_svg(&history(), "digits_mlp").unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for label in ["train loss", "validation loss", "validation accuracy", "digits_mlp"] {
            assert!(svg.contains(label), "missing {label}");
        }
        assert!(svg.matches("<polyline").count() >= 3);
    }
}
