"""The store read as tables, without torch: columns, the frame, statistics, worst case, sanity flags, curves,
leaderboard markdown, paired tests and the regression check."""
