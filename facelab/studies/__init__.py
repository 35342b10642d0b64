"""Study logic behind the audit notebooks: one module per notebook topic."""
