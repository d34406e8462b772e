plain text, no php tags
