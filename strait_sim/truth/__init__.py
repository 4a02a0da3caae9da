"""The truth model: how the simulated GPU behaves, built from a profile bundle's
measurements. Policies never see it (they have predictors); see DESIGN.md section 3."""
