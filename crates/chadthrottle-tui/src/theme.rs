//! Colours and text styles. Without colour (`NO_COLOR`) every style falls back to bold,
//! dim or reverse, so nothing on screen is told apart by colour alone.

use ratatui::style::{Color, Modifier, Style};

#[derive(Debug, Clone, Copy)]
pub struct Theme {
    color: bool,
}

impl Theme {
    pub const fn new(color: bool) -> Theme {
        Theme { color }
    }

    /// `style` with the foreground `color`, or `style` alone without colours.
    fn fg(&self, style: Style, color: Color) -> Style {
        if self.color { style.fg(color) } else { style }
    }

    pub fn header(&self) -> Style {
        self.fg(Style::new().add_modifier(Modifier::BOLD), Color::Cyan)
    }

    pub fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    /// Exited processes and placeholder text.
    pub fn fading(&self) -> Style {
        Style::new().add_modifier(Modifier::DIM)
    }

    pub fn limit(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Yellow)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }

    pub fn error(&self) -> Style {
        self.fg(Style::new().add_modifier(Modifier::BOLD), Color::Red)
    }

    pub fn banner(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Black).bg(Color::Yellow)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    /// The graph's lines: download, upload, and the two limits. Without colour they are
    /// told apart by their markers and the legend.
    pub fn graph_download(&self) -> Style {
        self.fg(Style::new(), Color::Green)
    }

    pub fn graph_upload(&self) -> Style {
        self.fg(Style::new(), Color::Magenta)
    }

    pub fn graph_limit_down(&self) -> Style {
        self.fg(Style::new(), Color::Yellow)
    }

    pub fn graph_limit_up(&self) -> Style {
        self.fg(Style::new(), Color::Red)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_style(theme: Theme) -> [Style; 10] {
        [
            theme.header(),
            theme.selected(),
            theme.fading(),
            theme.limit(),
            theme.error(),
            theme.banner(),
            theme.graph_download(),
            theme.graph_upload(),
            theme.graph_limit_down(),
            theme.graph_limit_up(),
        ]
    }

    #[test]
    fn without_colour_no_style_sets_one() {
        for style in every_style(Theme::new(false)) {
            assert_eq!((style.fg, style.bg), (None, None), "{style:?}");
        }
        let coloured = every_style(Theme::new(true));
        assert!(coloured.iter().any(|s| s.fg.is_some()));
    }

    #[test]
    fn without_colour_the_limit_and_errors_still_stand_out() {
        let plain = Theme::new(false);
        for style in [plain.limit(), plain.error(), plain.header()] {
            assert!(style.add_modifier.contains(Modifier::BOLD), "{style:?}");
        }
        assert!(plain.banner().add_modifier.contains(Modifier::REVERSED));
    }
}
