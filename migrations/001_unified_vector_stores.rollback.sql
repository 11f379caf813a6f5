DROP TABLE vector_stores;
