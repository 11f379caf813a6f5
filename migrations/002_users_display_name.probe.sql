SELECT count(*) FROM pragma_table_info('users') WHERE name = 'display_name';
