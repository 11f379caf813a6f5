SELECT count(*) FROM pragma_table_info('vector_stores') WHERE name = 'rollover_from';
